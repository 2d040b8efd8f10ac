// livecell dashboard: one Server-Sent Events connection shared by every tab of this browser.
// (A browser opens at most 6 connections per host; ten tabs each holding /events would starve.)
// Posts to each tab: {type: "status", status}, {type: "hello", data}, {type: "message", data},
// {type: "view", data}. A tab that connects later gets the hello and the messages since it first.
"use strict";
const ports = new Set();
const MAX_KEPT = 800;
let source = null;
let status = "connecting";
let hello = null;
let kept = [];  // events but frames, oldest first
let lastFrames = new Map();  // position -> its newest frame event

function post(message) {
  for (const port of ports) port.postMessage(message);
}

function setStatus(value) {
  status = value;
  post({ type: "status", status });
}

function connect() {
  source = new EventSource("/events");
  source.onopen = () => setStatus("live");
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus("reconnecting");
      setTimeout(connect, 2000);
    } else {
      setStatus("reconnecting");
    }
  };
  source.addEventListener("hello", (e) => {
    hello = JSON.parse(e.data);
    kept = [];
    lastFrames = new Map();
    post({ type: "hello", data: hello });
  });
  source.addEventListener("view", (e) => post({ type: "view", data: JSON.parse(e.data) }));
  source.onmessage = (e) => {
    const data = JSON.parse(e.data);
    if (data.kind === "frame") {
      lastFrames.set(data.position, data);
    } else {
      kept.push(data);
      if (kept.length > MAX_KEPT) kept = kept.slice(kept.length - MAX_KEPT);
    }
    post({ type: "message", data });
  };
}

onconnect = (event) => {
  const port = event.ports[0];
  ports.add(port);
  port.onmessage = (e) => {
    if (e.data === "bye") ports.delete(port);
  };
  port.postMessage({ type: "status", status });
  if (hello !== null) {
    port.postMessage({ type: "hello", data: hello });
    const history = kept.concat([...lastFrames.values()]).sort((a, b) => a.seq - b.seq);
    for (const data of history) port.postMessage({ type: "message", data });
  }
  if (source === null) connect();
};
