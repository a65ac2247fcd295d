// Talker-T2AV Save Video: a synchronized audio+video player (play, scrub) with the clip's duration.
// The mp4 holds both streams, so one <video> element keeps them in sync; the slider seeks in frame steps.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_ID = "TalkerT2AVSaveVideo";
const KEY = "talker_t2av";

function viewUrl(info) {
  const query = new URLSearchParams({ filename: info.filename, subfolder: info.subfolder || "", type: "output" });
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
  Object.assign(bar.style, { display: "flex", alignItems: "center", gap: "6px", fontSize: "11px", color: "#ccc" });
  const play = document.createElement("button");
  play.textContent = "Play";
  play.style.minWidth = "48px";
  const scrub = document.createElement("input");
  Object.assign(scrub, { type: "range", min: "0", max: "0", step: "1", value: "0" });
  scrub.style.flex = "1 1 auto";
  const label = document.createElement("span");
  label.style.whiteSpace = "nowrap";
  bar.append(play, scrub, label);

  const info = document.createElement("div");
  Object.assign(info.style, { fontSize: "11px", color: "#aaa" });
  root.append(video, bar, info);

  const state = { fps: 25, frames: 0, seconds: 0 };
  const showTime = () => {
    const frame = Math.min(state.frames - 1, Math.floor(video.currentTime * state.fps + 1e-6));
    label.textContent = `${formatTime(video.currentTime)} / ${formatTime(state.seconds)} · frame ${Math.max(frame, 0) + 1}/${state.frames}`;
    scrub.value = String(Math.max(frame, 0));
  };
  play.addEventListener("click", () => (video.paused ? video.play() : video.pause()));
  video.addEventListener("play", () => (play.textContent = "Pause"));
  video.addEventListener("pause", () => (play.textContent = "Play"));
  video.addEventListener("ended", () => (play.textContent = "Play"));
  video.addEventListener("timeupdate", showTime);
  scrub.addEventListener("input", () => {
    video.pause();
    // seek to the middle of the frame so the decoder shows exactly that frame
    video.currentTime = (Number(scrub.value) + 0.5) / state.fps;
    showTime();
  });

  return {
    root,
    show(clip) {
      state.fps = clip.fps || 25;
      state.frames = clip.frames || 0;
      state.seconds = clip.seconds || state.frames / state.fps;
      scrub.max = String(Math.max(state.frames - 1, 0));
      info.textContent = `Generated ${formatTime(state.seconds)} · ${state.frames} frames @ ${state.fps} fps` +
        (clip.has_audio ? " · with audio" : " · no audio");
      video.src = viewUrl(clip);
      video.load();
      showTime();
    },
  };
}

app.registerExtension({
  name: "TalkerT2AV.Preview",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_ID) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      const clips = message?.[KEY];
      if (!Array.isArray(clips) || clips.length === 0 || typeof this.addDOMWidget !== "function") {
        return result;
      }
      if (!this.talkerPlayer) {
        this.talkerPlayer = buildPlayer();
        this.addDOMWidget("talker_t2av_preview", "preview", this.talkerPlayer.root, {
          serialize: false,
          hideOnZoom: false,
          getMinHeight: () => 240,
        });
        this.setSize([Math.max(this.size[0], 360), Math.max(this.size[1], 340)]);
      }
      this.talkerPlayer.show(clips[clips.length - 1]);
      this.setDirtyCanvas?.(true, true);
      return result;
    };
  },
});
