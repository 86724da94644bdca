// recsage web chat: posts each turn to /v1/chat (multipart, with optional image / voice note / video) and
// renders its server-sent events as they arrive: tool use, streamed answer, items with posters.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { sessionId: null, busy: false, recorder: null, recording: null };

function authHeaders() {
  // X-Recsage-Client: a server without a token refuses form (multipart) POSTs without it, since any
  // site's page can make a browser send those; a page of another site cannot add this header.
  const token = $("token").value.trim();
  if (token) localStorage.setItem("recsage-token", token);
  const headers = { "X-Recsage-Client": "1" };
  if (token) headers.Authorization = "Bearer " + token;
  return headers;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function addTurn(role, text) {
  const turn = element("div", "turn " + role);
  if (text) turn.appendChild(element("div", "answer", text));
  $("messages").appendChild(turn);
  turn.scrollIntoView({ block: "end" });
  return turn;
}

async function showPoster(card, itemId) {
  // Posters go through fetch so the bearer token is sent; no poster -> a placeholder block.
  try {
    const response = await fetch("/v1/items/" + encodeURIComponent(itemId) + "/poster", { headers: authHeaders() });
    if (!response.ok) throw new Error("no poster");
    const img = element("img");
    img.alt = "poster";
    img.src = URL.createObjectURL(await response.blob());
    card.replaceChild(img, card.firstChild);
  } catch (_) {
    card.firstChild.textContent = "no poster";
  }
}

function renderItems(turn, items) {
  let grid = turn.querySelector(".items");
  if (grid) grid.remove();
  grid = element("div", "items");
  for (const item of items) {
    const card = element("div", "item");
    card.dataset.id = item.id;
    card.appendChild(element("div", "noposter", "…"));
    card.appendChild(element("div", "title", item.title + (item.year ? " (" + item.year + ")" : "")));
    card.appendChild(element("div", "meta", Object.values(item.facets || {}).flat().join(", ")));
    if (item.explanation) card.appendChild(element("div", "explanation", item.explanation));
    grid.appendChild(card);
    showPoster(card, item.id);
  }
  turn.appendChild(grid);
}

function answerNode(turn) {
  let node = turn.querySelector(".answer");
  if (!node) {
    node = element("div", "answer");
    turn.insertBefore(node, turn.querySelector(".items"));
  }
  return node;
}

function handleEvent(turn, event) {
  if (event.type === "session") state.sessionId = event.session_id;
  else if (event.type === "tool") {
    turn.querySelector(".tool").textContent = "using " + event.name;
  } else if (event.type === "token") {
    answerNode(turn).textContent += event.text;
  } else if (event.type === "items") {
    renderItems(turn, event.items || []);
  } else if (event.type === "explanation") {
    // the items came first; each explanation joins its card as its batch is done
    const card = [...turn.querySelectorAll(".item")].find((node) => node.dataset.id === String(event.id));
    if (card && event.explanation && !card.querySelector(".explanation")) {
      card.appendChild(element("div", "explanation", event.explanation));
    }
  } else if (event.type === "done") {
    if (event.answer && !answerNode(turn).textContent.trim()) answerNode(turn).textContent = event.answer;
    if (event.items && event.items.length) renderItems(turn, event.items);
  } else if (event.type === "error") {
    turn.classList.add("error");
    answerNode(turn).textContent = event.error ? event.error.message : "error";
  }
}

async function readEvents(response, onEvent) {
  // Server-sent events over fetch: blocks separated by a blank line, JSON in the data: line.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

async function send(event) {
  event.preventDefault();
  if (state.busy) return;
  const text = $("message").value.trim();
  const image = $("image").files[0];
  const audio = $("audio").files[0] || state.recording;
  const video = $("video").files[0];
  if (!text && !image && !audio && !video) return;
  const form = new FormData();
  form.append("message", text);
  if (state.sessionId) form.append("session_id", state.sessionId);
  if (image) form.append("image", image);
  if (audio) form.append("audio", audio);
  if (video) form.append("video", video);
  addTurn("user", [text, image && "[image " + image.name + "]", audio && "[voice note " + audio.name + "]",
                   video && "[video " + video.name + "]"]
    .filter(Boolean).join(" "));
  const turn = addTurn("assistant");
  turn.appendChild(element("div", "tool", "thinking…"));
  setBusy(true);
  try {
    const response = await fetch("/v1/chat", { method: "POST", body: form, headers: authHeaders() });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      handleEvent(turn, { type: "error", error: body.error || { message: "HTTP " + response.status } });
      if (response.status === 401) $("auth").hidden = false;
    } else {
      await readEvents(response, (e) => handleEvent(turn, e));
    }
    $("message").value = "";
    $("image").value = "";
    $("audio").value = "";
    $("video").value = "";
    state.recording = null;
    showAttached();
  } catch (err) {
    handleEvent(turn, { type: "error", error: { message: String(err) } });
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  state.busy = busy;
  $("send").disabled = busy;
  $("status").textContent = busy ? "recsage is thinking…" : "";
}

function showAttached() {
  const names = [$("image").files[0], $("audio").files[0] || state.recording, $("video").files[0]]
    .filter(Boolean).map((f) => f.name);
  $("attached").textContent = names.length ? "attached: " + names.join(", ") : "";
}

async function toggleRecording() {
  // A voice note from the microphone (MediaRecorder, usually webm/opus; the server decodes it with ffmpeg).
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    const recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const type = recorder.mimeType || "audio/webm";
      const extension = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
      state.recording = new File(chunks, "voice-note." + extension, { type });
      state.recorder = null;
      $("record").textContent = "Record";
      showAttached();
    };
    recorder.start();
    state.recorder = recorder;
    $("record").textContent = "Stop";
  } catch (err) {
    $("status").textContent = "no microphone: " + err;
  }
}

async function reset() {
  if (state.sessionId) {
    await fetch("/v1/chat/" + state.sessionId, { method: "DELETE", headers: authHeaders() }).catch(() => {});
  }
  state.sessionId = null;
  $("messages").textContent = "";
}

async function init() {
  $("token").value = localStorage.getItem("recsage-token") || "";
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) send(e);
  });
  $("image").addEventListener("change", showAttached);
  $("audio").addEventListener("change", showAttached);
  $("video").addEventListener("change", showAttached);
  $("reset").addEventListener("click", reset);
  $("record").addEventListener("click", toggleRecording);
  $("record").hidden = !(navigator.mediaDevices && window.MediaRecorder);
  const health = await fetch("/healthz").then((r) => r.json()).catch(() => ({}));
  $("auth").hidden = !health.auth;
}

init();
