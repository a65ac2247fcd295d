// Talker-T2AV Save Video: a synchronized audio+video player (play, frame-exact scrub, volume, mute,
// fullscreen) with the clip's duration. The mp4 holds both streams, so one <video> element keeps them in sync.
// The node also reports its file the way core Save Video does ("images" + "animated"), so the mp4 shows in the
// Assets panel and API workers collect it; the core preview that would bring is not drawn on this node.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

// Save Video and Render and Save (streamed) report their mp4 the same way
const NODE_IDS = ["TalkerT2AVSaveVideo", "TalkerT2AVRenderSave"];
const KEY = "talker_t2av";

function viewUrl(file) {
  const query = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder || "", type: "output" });
  return api.apiURL(`/view?${query.toString()}`);
}

function formatTime(seconds) {
  return `${seconds.toFixed(2)} s`;
}

function buildPlayer() {
  const root = document.createElement("div");
  root.className = "talker-t2av-preview";
  Object.assign(root.style, { display: "flex", flexDirection: "column", gap: "4px", width: "100%", height: "100%" });

  const video = document.createElement("video");
  Object.assign(video, { preload: "auto", playsInline: true, loop: false });
  Object.assign(video.style, { width: "100%", flex: "1 1 auto", minHeight: "0", objectFit: "contain", background: "#000" });

  const bar = document.createElement("div");
  Object.assign(bar.style, { display: "flex", flexWrap: "wrap", alignItems: "center", gap: "4px 6px",
                             fontSize: "11px", color: "#ccc" });
  const play = document.createElement("button");
  play.textContent = "Play";
  play.style.minWidth = "48px";
  const scrub = document.createElement("input");
  Object.assign(scrub, { type: "range", min: "0", max: "0", step: "1", value: "0" });
  Object.assign(scrub.style, { flex: "1 1 120px", minWidth: "80px" });
  const label = document.createElement("span");
  Object.assign(label.style, { whiteSpace: "nowrap", fontVariantNumeric: "tabular-nums" });
  const mute = document.createElement("button");
  mute.textContent = "Mute";
  mute.title = "Mute / unmute";
  const volume = document.createElement("input");
  Object.assign(volume, { type: "range", min: "0", max: "1", step: "0.05", value: "1", title: "Volume" });
  Object.assign(volume.style, { width: "64px", flex: "0 0 64px" });
  const full = document.createElement("button");
  full.textContent = "Full screen";
  full.title = "Fullscreen";
  bar.append(play, scrub, label, mute, volume, full);

  const info = document.createElement("div");
  Object.assign(info.style, { fontSize: "11px", color: "#aaa" });
  // One clip per line of text gives several clips: step through them (shown only then)
  const picker = document.createElement("div");
  Object.assign(picker.style, { display: "none", alignItems: "center", gap: "6px", fontSize: "11px", color: "#ccc" });
  const previous = document.createElement("button");
  previous.textContent = "\u2039 Previous";
  const next = document.createElement("button");
  next.textContent = "Next \u203a";
  const which = document.createElement("span");
  picker.append(previous, which, next);
  root.append(video, bar, picker, info);

  const state = { fps: 25, frames: 0, seconds: 0 };
  const showTime = () => {
    const frame = Math.min(state.frames - 1, Math.floor(video.currentTime * state.fps + 1e-6));
    label.textContent = `${formatTime(video.currentTime)} / ${formatTime(state.seconds)} · frame ${Math.max(frame, 0) + 1}/${state.frames}`;
    scrub.value = String(Math.max(frame, 0));
  };
  // "timeupdate" fires only about 4 times a second: while playing, follow every displayed frame instead
  let ticking = false;
  const tick = () => {
    showTime();
    ticking = !video.paused && !video.ended;
    if (ticking) requestAnimationFrame(tick);
  };
  play.addEventListener("click", () => (video.paused ? video.play() : video.pause()));
  video.addEventListener("play", () => {
    play.textContent = "Pause";
    if (!ticking) requestAnimationFrame(tick);
  });
  video.addEventListener("pause", () => (play.textContent = "Play"));
  video.addEventListener("ended", () => (play.textContent = "Play"));
  video.addEventListener("timeupdate", showTime);
  video.addEventListener("seeked", showTime);
  mute.addEventListener("click", () => (video.muted = !video.muted));
  volume.addEventListener("input", () => {
    video.volume = Number(volume.value);
    video.muted = video.volume === 0;
  });
  video.addEventListener("volumechange", () => {
    mute.textContent = video.muted ? "Unmute" : "Mute";
    volume.value = String(video.muted ? 0 : video.volume);
  });
  full.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen?.();
    else video.requestFullscreen?.();
  });
  scrub.addEventListener("input", () => {
    video.pause();
    // seek to the middle of the frame so the decoder shows exactly that frame
    video.currentTime = (Number(scrub.value) + 0.5) / state.fps;
    showTime();
  });

  const clips = { list: [], index: 0 };
  const pick = (index) => {
    clips.index = (index + clips.list.length) % clips.list.length;
    which.textContent = `clip ${clips.index + 1} of ${clips.list.length}`;
    player.show(clips.list[clips.index]);
  };
  previous.addEventListener("click", () => pick(clips.index - 1));
  next.addEventListener("click", () => pick(clips.index + 1));

  const player = {
    root,
    showAll(list) {
      clips.list = list;
      picker.style.display = list.length > 1 ? "flex" : "none";
      pick(0);
    },
    show(clip) {
      state.fps = clip.fps || 25;
      state.frames = clip.frames || 0;
      state.seconds = clip.seconds || state.frames / state.fps;
      scrub.max = String(Math.max(state.frames - 1, 0));
      info.textContent = `Generated ${formatTime(state.seconds)} · ${state.frames} frames @ ${state.fps} fps` +
        (clip.has_audio ? " · with audio" : " · no audio");
      video.src = viewUrl(clip.file);
      video.load();
      showTime();
    },
  };
  return player;
}

app.registerExtension({
  name: "TalkerT2AV.Preview",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_IDS.includes(nodeData?.name)) return;
    // The core draws a generic video preview for "images" + "animated" outputs; this node has its own player.
    nodeType.prototype.onDrawBackground = function () {};
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      // the mp4 as core Save Video reports it, and [frames, fps, seconds, has_audio] under the pack's own key
      const files = message?.images;
      const figures = message?.[KEY];
      // [frames, fps, seconds, has_audio] per file, in the same order (several files with one clip per line)
      if (!Array.isArray(files) || !files.length || !Array.isArray(figures) || figures.length !== 4 * files.length ||
          typeof this.addDOMWidget !== "function") {
        return result;
      }
      const clips = files.map((file, i) => {
        const [frames, fps, seconds, hasAudio] = figures.slice(4 * i, 4 * i + 4);
        return { file, frames, fps, seconds, has_audio: hasAudio };
      });
      if (!this.talkerPlayer) {
        this.talkerPlayer = buildPlayer();
        this.addDOMWidget("talker_t2av_preview", "preview", this.talkerPlayer.root, {
          serialize: false,
          hideOnZoom: false,
          canvasOnly: true, // a preview, not a parameter: keep it out of the Parameters panel
          getMinHeight: () => 240,
        });
        this.setSize([Math.max(this.size[0], 400), Math.max(this.size[1], 360)]);
      }
      this.talkerPlayer.showAll(clips);
      this.setDirtyCanvas?.(true, true);
      return result;
    };
  },
});
