// Audio and video calls, on every signed-in page (xnode/calls/service.py is the other end).
// - "Call" / "Video call" buttons ([data-call]) place a call over the live socket;
// - an incoming call rings in every open tab: a banner with the caller, accept with audio or
//   video, decline; the first tab to answer takes it, the others stop ringing;
// - the call view: remote and local video, mute, camera, screen sharing, devices, hang up,
//   elapsed time, connection quality and path (peer to peer or through the relay), and the
//   verification code both people can read aloud (docs/calls-over-activitypub.md).
// The media go browser to browser (DTLS-SRTP); the node passes the signalling only.
"use strict";

(() => {
  const live = () => window.xnodeLive;
  const ENDED = {
    declined: "Declined", busy: "Busy", unavailable: "Unavailable", timeout: "No answer",
    cancelled: "Cancelled", ended: "Call ended", failed: "Call failed",
  };
  const CANDIDATE_BATCH_MS = 50;

  let call = null; // the one call of this tab
  let ringing = null; // an incoming call this tab shows, not (yet) answered here

  // --- the views -------------------------------------------------------------------------

  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  };
  const icon = (name) => {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", `/static/icons.svg#${name}`);
    svg.append(use);
    return svg;
  };
  const button = (name, label, handler, extra = "") => {
    const node = el("button", { type: "button", class: `call-control ${extra}`.trim() },
      icon(name), el("span", { class: "call-control-label", text: label }));
    node.addEventListener("click", handler);
    return node;
  };

  const person = (who) => {
    const avatar = who.avatar
      ? el("img", { class: "avatar-small", src: who.avatar, alt: "", width: "40", height: "40" })
      : el("span", { class: "avatar-small avatar-placeholder", "aria-hidden": "true",
        text: (who.name || who.acct || "?")[0].toUpperCase() });
    return el("span", { class: "call-person" }, avatar,
      el("span", {}, el("strong", { text: who.name || who.acct }), " ",
        el("span", { class: "handle", text: `@${who.acct}` })));
  };

  // The ringing banner: on top of whatever page the callee reads.
  let ringTone = null;
  const startRingTone = () => {
    try {
      const audio = new AudioContext();
      const gain = audio.createGain();
      gain.gain.value = 0;
      gain.connect(audio.destination);
      const tone = audio.createOscillator();
      tone.frequency.value = 440;
      tone.connect(gain);
      tone.start();
      const pulse = () => {
        const now = audio.currentTime;
        gain.gain.setValueAtTime(0.15, now);
        gain.gain.setValueAtTime(0, now + 0.4);
        gain.gain.setValueAtTime(0.15, now + 0.6);
        gain.gain.setValueAtTime(0, now + 1.0);
      };
      pulse();
      ringTone = { audio, timer: setInterval(pulse, 3000) };
    } catch (error) {
      ringTone = null; // no sound without a user gesture in some browsers: the banner stays
    }
  };
  const stopRingTone = () => {
    if (!ringTone) return;
    clearInterval(ringTone.timer);
    ringTone.audio.close();
    ringTone = null;
  };

  const showBanner = (frame) => {
    hideBanner();
    const video = frame.media.includes("video");
    const banner = el("section", { class: "call-banner", role: "alertdialog",
      "aria-label": `Incoming ${video ? "video " : ""}call` },
      el("p", { class: "call-banner-title", text: video ? "Incoming video call" : "Incoming call" }),
      person(frame.from),
      el("div", { class: "call-banner-actions" },
        button("call", "Accept", () => accept(frame, false), "call-accept"),
        ...(video ? [button("video", "Accept with video", () => accept(frame, true), "call-accept")] : []),
        button("hangup", "Decline", () => decline(frame), "call-decline")));
    document.body.append(banner);
    banner.querySelector(".call-accept").focus();
    ringing = { frame, banner };
    startRingTone();
  };
  const hideBanner = () => {
    stopRingTone();
    if (ringing) ringing.banner.remove();
    ringing = null;
  };

  // The call view: one overlay for the whole call.
  const buildView = (peerLabel) => {
    const remoteVideo = el("video", { class: "call-remote", autoplay: "", playsinline: "" });
    const localVideo = el("video", { class: "call-local", autoplay: "", playsinline: "" });
    localVideo.muted = true;
    const status = el("p", { class: "call-status", role: "status", text: "Calling…" });
    const elapsed = el("span", { class: "call-elapsed" });
    const quality = el("p", { class: "call-quality muted" });
    const code = el("p", { class: "call-code", hidden: "" });
    const devices = el("details", { class: "call-devices" }, el("summary", { text: "Devices" }));
    const controls = el("div", { class: "call-controls" });
    const videos = el("div", { class: "call-videos" }, remoteVideo, localVideo);
    const view = el("section", { class: "call-view", "aria-label": "Call" },
      el("header", { class: "call-header" }, el("strong", { text: peerLabel }), " ", elapsed),
      videos,
      status, code, quality, controls, devices);
    // Hanging up is possible from the first moment (a caller cancels while it rings).
    controls.append(button("hangup", "Hang up", () => hangUp(), "call-hangup"));
    document.body.append(view);
    return { view, videos, remoteVideo, localVideo, status, elapsed, quality, code, controls,
      devices };
  };

  const setStatus = (text) => {
    if (call && call.ui) call.ui.status.textContent = text;
  };

  // --- the connection ------------------------------------------------------------------------

  // Only the node's own servers (or none): never a third party's STUN server.
  const peerConnection = (iceServers, relayOnly) => new RTCPeerConnection({
    iceServers: iceServers || [],
    iceTransportPolicy: relayOnly ? "relay" : "all",
  });

  // Candidates come in bursts: sent in batches (at most 20 per frame, as the node allows)
  // while `current()` says the connection still belongs to the call; `to` names the other
  // person in a group call (each pair has its own connection).
  const trickle = (pc, current, to) => {
    const batch = [];
    let timer = null;
    const flush = () => {
      timer = null;
      if (!current()) return;
      live().send({ type: "call.signal", call: call.id, ...(to ? { to } : {}),
        candidates: batch.splice(0, 20) });
      if (batch.length) timer = setTimeout(flush, CANDIDATE_BATCH_MS);
    };
    pc.addEventListener("icecandidate", (event) => {
      if (!event.candidate || !event.candidate.candidate) return;
      batch.push(event.candidate.toJSON());
      if (!timer) timer = setTimeout(flush, CANDIDATE_BATCH_MS);
    });
  };

  const newConnection = (iceServers, relayOnly) => {
    const pc = peerConnection(iceServers, relayOnly);
    trickle(pc, () => call && call.id && call.pc === pc);
    pc.addEventListener("track", (event) => {
      if (!call || !call.ui) return;
      const video = call.ui.remoteVideo;
      if (video.srcObject !== event.streams[0]) video.srcObject = event.streams[0];
      const ours = call;
      // When the first picture arrives (bench/call_setup.py measures it).
      if (event.track.kind === "video" && video.requestVideoFrameCallback) {
        video.requestVideoFrameCallback(() => { ours.timings.firstFrameAt = Date.now(); });
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!call || call.pc !== pc) return;
      if (pc.connectionState === "connected" && !call.connectedAt) connected();
      else if (pc.connectionState === "failed") {
        live().send({ type: "call.hangup", call: call.id });
        finish("failed");
      }
    });
    return pc;
  };

  // The other side's candidates; kept in `pending` until its description is set.
  const addCandidates = async (pc, pending, candidates) => {
    if (!pc.remoteDescription) {
      pending.push(...candidates);
      return;
    }
    for (const candidate of candidates) {
      try {
        await pc.addIceCandidate(candidate);
      } catch (error) {
        console.warn("a candidate was refused", error);
      }
    }
  };

  const addRemoteCandidates = async (candidates) => {
    if (call && call.pc) await addCandidates(call.pc, call.pendingCandidates, candidates);
  };

  const setRemote = async (type, sdp) => {
    const ours = call;
    await ours.pc.setRemoteDescription({ type, sdp });
    if (call !== ours) return; // ended meanwhile
    const waiting = call.pendingCandidates.splice(0);
    await addRemoteCandidates(waiting);
  };

  const localMedia = async (video) => {
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video });
    } catch (error) {
      live().announce(video
        ? "Your browser did not give access to the camera and microphone."
        : "Your browser did not give access to the microphone.", "error");
      return null;
    }
  };

  // --- placing and answering -----------------------------------------------------------------

  // Place a call: `whom` is { to: handle } or, for a group call, { conversation }.
  const place = async (whom, media, label) => {
    if (call) {
      live().announce("You are in a call already.", "error");
      return;
    }
    const video = media === "video";
    const stream = await localMedia(video);
    if (!stream) return;
    const ref = Math.random().toString(36).slice(2);
    const group = whom.conversation !== undefined;
    call = { ref, role: "caller", stream, video, pendingCandidates: [], ui: buildView(label),
      timings: {}, ...(group ? { group, peers: new Map() } : {}) };
    if (group) gridView();
    call.ui.localVideo.srcObject = stream;
    if (!live().send({ type: "call.place", ref, ...whom, media: video ? ["audio", "video"] : ["audio"] })) {
      finish(null, "Not connected to the node; try again in a moment.");
    }
  };

  // The callee's camera and microphone (declining the call without them).
  const answerMedia = async (frame, withVideo) => {
    const stream = await localMedia(withVideo && frame.media.includes("video"));
    if (!stream) live().send({ type: "call.decline", call: frame.call });
    return stream;
  };

  const placed = async (frame) => {
    if (!call || call.ref !== frame.ref || call.id) return;
    call.id = frame.call;
    if (call.group) {
      call.iceServers = frame.iceServers;
      call.relayOnly = frame.relayOnly;
      return; // the others offer as they join
    }
    call.pc = newConnection(frame.iceServers, frame.relayOnly);
    for (const track of call.stream.getTracks()) call.pc.addTrack(track, call.stream);
    const ours = call;
    await ours.pc.setLocalDescription(await ours.pc.createOffer());
    if (call !== ours) return; // hung up meanwhile
    live().send({ type: "call.offer", call: ours.id, offer: ours.pc.localDescription.sdp });
  };

  const accept = async (frame, withVideo) => {
    const clickedAt = Date.now();
    hideBanner();
    if (call) return;
    if (frame.group) {
      await acceptGroup(frame, withVideo);
      return;
    }
    const stream = await answerMedia(frame, withVideo);
    if (!stream) return;
    call = { id: frame.call, role: "callee", stream, video: withVideo, pendingCandidates: [],
      ui: buildView(`@${frame.from.acct}`), timings: { acceptedAt: clickedAt } };
    call.ui.localVideo.srcObject = stream;
    setStatus("Connecting…");
    call.pc = newConnection(frame.iceServers, frame.relayOnly);
    for (const track of stream.getTracks()) call.pc.addTrack(track, stream);
    const ours = call;
    await setRemote("offer", frame.offer);
    if (call !== ours) return;
    await ours.pc.setLocalDescription(await ours.pc.createAnswer());
    if (call !== ours) return; // hung up meanwhile
    live().send({ type: "call.accept", call: ours.id, answer: ours.pc.localDescription.sdp });
  };

  const decline = (frame) => {
    hideBanner();
    live().send({ type: "call.decline", call: frame.call });
  };

  const hangUp = () => {
    if (!call) return;
    if (call.id) live().send({ type: "call.hangup", call: call.id });
    finish(call.connectedAt ? "ended" : "cancelled");
  };

  // --- group calls: one connection per other person (a mesh) ---------------------------------

  const groupPeer = (peerId, summary) => {
    const known = call.peers.get(peerId);
    if (known) return known;
    const video = el("video", { class: "call-remote", autoplay: "", playsinline: "" });
    const tile = el("figure", { class: "call-tile" }, video,
      el("figcaption", { text: summary ? summary.name || `@${summary.acct}` : "" }));
    call.ui.videos.insertBefore(tile, call.ui.localVideo);
    const pc = peerConnection(call.iceServers, call.relayOnly);
    const peer = { pc, video, tile, pending: [], summary };
    call.peers.set(peerId, peer);
    for (const track of call.stream.getTracks()) pc.addTrack(track, call.stream);
    trickle(pc, () => call && call.peers.get(peerId) === peer, peerId);
    pc.addEventListener("track", (event) => {
      if (video.srcObject !== event.streams[0]) video.srcObject = event.streams[0];
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!call || call.peers.get(peerId) !== peer) return;
      if (pc.connectionState === "connected") {
        if (!call.connectedAt) connected();
        else {
          showCode();
          showQuality();
        }
      }
    });
    return peer;
  };

  const dropPeer = (peerId) => {
    const peer = call && call.peers.get(peerId);
    if (!peer) return;
    call.peers.delete(peerId);
    peer.pc.close();
    peer.tile.remove();
    if (call.connectedAt) {
      showCode();
      showQuality();
    }
  };

  const groupSignal = async (frame) => {
    const ours = call;
    const peer = groupPeer(frame.from, null);
    if (frame.candidates) {
      await addCandidates(peer.pc, peer.pending, frame.candidates);
      return;
    }
    await peer.pc.setRemoteDescription({ type: frame.sdpType, sdp: frame.sdp });
    await addCandidates(peer.pc, peer.pending, peer.pending.splice(0));
    if (frame.sdpType === "offer") {
      await peer.pc.setLocalDescription(await peer.pc.createAnswer());
      if (call !== ours) return; // left meanwhile
      live().send({ type: "call.signal", call: ours.id, to: frame.from, sdpType: "answer",
        sdp: peer.pc.localDescription.sdp });
    }
  };

  // A group call's view: a grid of tiles, one per other person (groupPeer), no single remote.
  const gridView = () => {
    call.ui.videos.classList.add("call-grid");
    call.ui.remoteVideo.remove();
  };

  const acceptGroup = async (frame, withVideo) => {
    const stream = await answerMedia(frame, withVideo);
    if (!stream) return;
    call = { id: frame.call, role: "callee", group: true, peers: new Map(), stream,
      video: withVideo, iceServers: frame.iceServers, relayOnly: frame.relayOnly,
      pendingCandidates: [], ui: buildView("Group call"), timings: { acceptedAt: Date.now() } };
    gridView();
    call.ui.localVideo.srcObject = stream;
    setStatus("Connecting…");
    live().send({ type: "call.accept", call: call.id });
  };

  // Whoever joins offers to each person already in.
  const offerToPeers = async (frame) => {
    const ours = call;
    for (const summary of frame.peers) {
      if (call !== ours) return; // left meanwhile
      const peer = groupPeer(summary.id, summary);
      await peer.pc.setLocalDescription(await peer.pc.createOffer());
      if (call !== ours) return;
      live().send({ type: "call.signal", call: ours.id, to: summary.id, sdpType: "offer",
        sdp: peer.pc.localDescription.sdp });
    }
  };

  const connections = () => (call.pc ? [[null, call.pc]]
    : [...call.peers.entries()].map(([id, peer]) => [id, peer.pc]));

  // --- in the call ----------------------------------------------------------------------------

  const connected = () => {
    call.connectedAt = Date.now();
    call.timings.connectedAt = call.connectedAt;
    setStatus("Connected");
    buildControls();
    call.clock = setInterval(() => {
      const seconds = Math.floor((Date.now() - call.connectedAt) / 1000);
      call.ui.elapsed.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    }, 1000);
    showCode();
    call.stats = setInterval(showQuality, 2000);
    showQuality();
  };

  // Both sides hash the two DTLS fingerprints their connection really negotiated; a server
  // that stood in the middle would have to show its own, and the codes would differ.
  const verificationCode = async (pc) => {
    const stats = await pc.getStats();
    let transport = null;
    stats.forEach((report) => {
      if (report.type === "transport" && report.localCertificateId) transport = report;
    });
    if (!transport) return null;
    const local = stats.get(transport.localCertificateId);
    const remote = stats.get(transport.remoteCertificateId);
    if (!local || !remote) return null;
    const lines = [local, remote]
      .map((cert) => `${cert.fingerprintAlgorithm} ${cert.fingerprint.toUpperCase()}`)
      .sort();
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(lines.join("\n"))));
    const n = ((digest[0] << 24) >>> 0) + (digest[1] << 16) + (digest[2] << 8) + digest[3];
    return String(n % 1000000).padStart(6, "0");
  };

  let codeRound = 0;
  const showCode = async () => {
    if (!call) return;
    // Connections of a group call connect close together, and reading the certificates
    // takes awaits: an earlier round that finishes last must not put back its shorter list.
    const round = ++codeRound;
    const codes = [];
    let connectedCount = 0;
    for (const [peerId, pc] of connections()) {
      if (pc.connectionState !== "connected") continue;
      connectedCount += 1;
      const code = await verificationCode(pc);
      if (code) codes.push([peerId, code]);
    }
    if (!call || round !== codeRound) return;
    // The certificates may reach a connection's stats a moment after it says "connected"
    // (later on a busy machine): look again until every connected peer has its code.
    if (codes.length < connectedCount) setTimeout(showCode, 1000);
    if (!codes.length) return;
    const spaced = (code) => `${code.slice(0, 3)} ${code.slice(3)}`;
    if (call.group) {
      call.code = Object.fromEntries(codes);
      call.ui.code.replaceChildren(el("span", { class: "call-code-label", text: "Verification codes " }),
        ...codes.map(([peerId, code]) => {
          const peer = call.peers.get(peerId);
          const name = peer && peer.summary ? peer.summary.name || peer.summary.acct : "";
          return el("span", { class: "call-code-peer" }, `${name} `, el("strong", { text: spaced(code) }));
        }));
    } else {
      call.code = codes[0][1];
      call.ui.code.replaceChildren(
        el("span", { class: "call-code-label", text: "Verification code " }),
        el("strong", { text: spaced(call.code) }));
    }
    call.ui.code.title = "Read it aloud to each other: the same code on both screens means no server could listen in.";
    call.ui.code.hidden = false;
  };

  const quality = async (pc) => {
    const stats = await pc.getStats();
    let pair = null;
    const byId = new Map();
    let lost = 0;
    let received = 0;
    let framesDecoded = 0;
    let audioPackets = 0;
    stats.forEach((report) => {
      byId.set(report.id, report);
      if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") pair = report;
      if (report.type === "inbound-rtp") {
        lost += report.packetsLost || 0;
        received += report.packetsReceived || 0;
        if (report.kind === "video") framesDecoded += report.framesDecoded || 0;
        if (report.kind === "audio") audioPackets += report.packetsReceived || 0;
      }
    });
    const localCandidate = pair ? byId.get(pair.localCandidateId) : null;
    const remoteCandidate = pair ? byId.get(pair.remoteCandidateId) : null;
    const relayed = [localCandidate, remoteCandidate].some((c) => c && c.candidateType === "relay");
    return {
      rttMs: pair && pair.currentRoundTripTime !== undefined ? Math.round(pair.currentRoundTripTime * 1000) : null,
      loss: received + lost ? lost / (received + lost) : 0,
      path: pair ? (relayed ? "relay" : "direct") : null,
      framesDecoded, audioPackets,
    };
  };

  const showQuality = async () => {
    if (!call) return;
    const first = connections()[0];
    if (!first) return;
    const q = await quality(first[1]);
    if (!call) return;
    call.quality = q;
    const parts = [];
    if (q.path) parts.push(q.path === "relay" ? "Through the relay" : "Peer to peer");
    if (q.rttMs !== null) parts.push(`${q.rttMs} ms`);
    parts.push(`${(q.loss * 100).toFixed(1)} % lost`);
    if (call.group) parts.push(`${call.peers.size + 1} people`);
    call.ui.quality.textContent = parts.join(" · ");
  };

  const sendersOf = (kind) => connections().flatMap(([, pc]) => pc.getSenders())
    .filter((sender) => sender.track && sender.track.kind === kind);

  const buildControls = () => {
    const { controls } = call.ui;
    controls.replaceChildren();
    const mute = button("mic", "Mute", () => {
      const track = call.stream.getAudioTracks()[0];
      track.enabled = !track.enabled;
      mute.querySelector(".call-control-label").textContent = track.enabled ? "Mute" : "Unmute";
      mute.setAttribute("aria-pressed", String(!track.enabled));
    });
    mute.setAttribute("aria-pressed", "false");
    controls.append(mute);
    if (call.stream.getVideoTracks().length) {
      const camera = button("video-off", "Camera off", () => {
        const track = call.stream.getVideoTracks()[0];
        track.enabled = !track.enabled;
        camera.querySelector(".call-control-label").textContent = track.enabled ? "Camera off" : "Camera on";
        camera.setAttribute("aria-pressed", String(!track.enabled));
      });
      camera.setAttribute("aria-pressed", "false");
      controls.append(camera);
      if (navigator.mediaDevices.getDisplayMedia) {
        controls.append(button("screen", "Share screen", shareScreen));
      }
    }
    controls.append(button("hangup", "Hang up", hangUp, "call-hangup"));
    fillDevices();
  };

  const shareScreen = async () => {
    const senders = sendersOf("video");
    if (!senders.length) return;
    try {
      const screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
      const track = screen.getVideoTracks()[0];
      const camera = call.stream.getVideoTracks()[0];
      await Promise.all(senders.map((sender) => sender.replaceTrack(track)));
      track.addEventListener("ended", () => {
        if (call) senders.forEach((sender) => sender.replaceTrack(camera));
      });
    } catch (error) {
      live().announce("Screen sharing was not started.", "error");
    }
  };

  const fillDevices = async () => {
    if (!navigator.mediaDevices.enumerateDevices) return;
    const ours = call;
    const found = await navigator.mediaDevices.enumerateDevices();
    if (call !== ours) return; // the call ended meanwhile
    const { devices } = call.ui;
    devices.querySelectorAll("label").forEach((node) => node.remove());
    const choose = (kind, label, onPick) => {
      const options = found.filter((d) => d.kind === kind);
      if (options.length < 2) return;
      const select = el("select", {});
      options.forEach((d, i) => select.append(el("option", { value: d.deviceId, text: d.label || `${label} ${i + 1}` })));
      select.addEventListener("change", () => onPick(select.value));
      devices.append(el("label", {}, `${label} `, select));
    };
    const swap = async (kind, deviceId) => {
      const constraints = kind === "audio" ? { audio: { deviceId: { exact: deviceId } } } : { video: { deviceId: { exact: deviceId } } };
      const fresh = await navigator.mediaDevices.getUserMedia(constraints);
      const track = kind === "audio" ? fresh.getAudioTracks()[0] : fresh.getVideoTracks()[0];
      const old = kind === "audio" ? call.stream.getAudioTracks()[0] : call.stream.getVideoTracks()[0];
      await Promise.all(sendersOf(kind).map((sender) => sender.replaceTrack(track)));
      call.stream.removeTrack(old);
      old.stop();
      call.stream.addTrack(track);
    };
    choose("audioinput", "Microphone", (id) => swap("audio", id));
    if (call.stream.getVideoTracks().length) choose("videoinput", "Camera", (id) => swap("video", id));
    if (call.ui.remoteVideo.setSinkId) {
      choose("audiooutput", "Speaker", (id) => call.ui.remoteVideo.setSinkId(id));
    }
  };

  const finish = (reason, message) => {
    if (!call) return;
    const ending = call;
    call = null;
    clearInterval(ending.clock);
    clearInterval(ending.stats);
    if (ending.pc) ending.pc.close();
    if (ending.peers) ending.peers.forEach((peer) => peer.pc.close());
    if (ending.stream) ending.stream.getTracks().forEach((track) => track.stop());
    ending.ui.status.textContent = message || ENDED[reason] || "Call ended";
    ending.ui.controls.replaceChildren(button("close", "Close", () => ending.ui.view.remove()));
    setTimeout(() => ending.ui.view.remove(), 4000);
  };

  // --- frames from the node -------------------------------------------------------------------

  const onFrame = async (frame) => {
    switch (frame.type) {
      case "call.placed": await placed(frame); break;
      case "call.ringing":
        if (call && call.id === frame.call) setStatus("Ringing…");
        break;
      case "call.incoming":
        if (!call) showBanner(frame);
        break;
      case "call.taken":
        if (ringing && ringing.frame.call === frame.call) hideBanner();
        break;
      case "call.accepted":
        if (call && call.id === frame.call) {
          call.timings.acceptedAt = Date.now();
          setStatus("Connecting…");
          await setRemote("answer", frame.answer);
        }
        break;
      case "call.signal":
        if (call && call.id === frame.call) {
          if (call.group) await groupSignal(frame);
          else if (frame.candidates) await addRemoteCandidates(frame.candidates);
        }
        break;
      case "call.peers":
        if (call && call.group && call.id === frame.call) await offerToPeers(frame);
        break;
      case "call.joined":
        if (call && call.group && call.id === frame.call) {
          groupPeer(frame.peer.id, frame.peer);
          if (!call.connectedAt) setStatus("Connecting…");
        }
        break;
      case "call.left":
        if (call && call.group && call.id === frame.call) dropPeer(frame.peer);
        break;
      case "call.ended":
        if (ringing && ringing.frame.call === frame.call) hideBanner();
        if (call && call.id === frame.call) finish(frame.reason, frame.detail);
        break;
      case "call.error":
        if (call && ((frame.ref && call.ref === frame.ref) || (frame.call && call.id === frame.call && !call.pc))) {
          finish(null, frame.error);
        }
        break;
      default:
    }
  };

  document.addEventListener("xnode:frame", (event) => {
    if (typeof event.detail.type === "string" && event.detail.type.startsWith("call.")) {
      onFrame(event.detail).catch((error) => console.warn("call frame", error));
    }
  });
  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const trigger = target ? target.closest("[data-call]") : null;
    const group = target ? target.closest("[data-call-conversation]") : null;
    if (trigger) {
      event.preventDefault();
      place({ to: trigger.dataset.call }, trigger.dataset.media, trigger.dataset.call);
    } else if (group) {
      event.preventDefault();
      place({ conversation: group.dataset.callConversation }, group.dataset.media,
        group.dataset.label || "Group call");
    }
  });
  // Leaving the page ends the call (its connection lives in this page): ask first.
  window.addEventListener("beforeunload", (event) => {
    if (call && (call.pc || (call.peers && call.peers.size))) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  // Calls need the live connection and WebRTC: the buttons show only where both exist.
  if (window.RTCPeerConnection && navigator.mediaDevices) {
    document.querySelectorAll("[data-call], [data-call-conversation]").forEach((node) => {
      node.hidden = false;
    });
  }

  // For tests and the curious: what the call shows.
  window.xnodeCalls = {
    active: () => (call ? { id: call.id, role: call.role, connected: Boolean(call.connectedAt),
      code: call.code || null, timings: { ...call.timings } } : null),
    quality: async () => (call && call.pc ? quality(call.pc) : null),
    // A group call: the quality of each connection, by the other person's id.
    peerQualities: async () => {
      if (!call || !call.peers) return null;
      const found = {};
      for (const [peerId, peer] of call.peers) found[peerId] = await quality(peer.pc);
      return found;
    },
  };
})();
