// One Socket.IO client of the /jobs namespace, driven by tests/security/test_socketio_authz.py.
//
//   node probe.mjs <base_url> '<scenario JSON>'
//
// scenario: {"auth": {"token": "..."} or null, "emits": [["subscribe", {"job_id": "..."}], ...],
//            "listen_ms": 2000}
// Connects, sends every emit and waits for its acknowledgement, prints the line "ready", listens for
// listen_ms, then prints one JSON line: {"connected", "connect_error", "errors": [...], "updates": [...]}.
import { io } from "socket.io-client";

const [base, raw] = process.argv.slice(2);
const scenario = JSON.parse(raw);
const out = { connected: false, connect_error: null, errors: [], updates: [] };

const socket = io(`${base}/jobs`, {
  auth: scenario.auth ?? undefined,
  transports: ["websocket"],
  reconnection: false,
  timeout: 10000,
});

function finish() {
  console.log(JSON.stringify(out));
  socket.close();
  process.exit(0);
}

socket.on("job:update", (job) => out.updates.push(job));
socket.on("error", (payload) => out.errors.push(payload));
socket.on("connect_error", (err) => {
  out.connect_error = err.message;
  finish();
});
socket.on("connect", async () => {
  out.connected = true;
  for (const [event, data] of scenario.emits ?? []) {
    await socket.timeout(5000).emitWithAck(event, data);
  }
  console.log("ready");
  setTimeout(finish, scenario.listen_ms ?? 1000);
});
