"""Video side of Talker-T2AV: the LIA-X face renderer (``lia_x``) and reference-face preprocessing (``face_prep``)."""
