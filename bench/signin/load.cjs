// Wallet sign-in throughput, gantry next to a peer, driven by the same client code in one run.
//   node load.cjs gantry http://127.0.0.1:18401   |   node load.cjs peer http://127.0.0.1:18400
// (CommonJS, so NODE_PATH finds autocannon and ethers in the scripts' npm cache.)
// Prints one JSON line: requests per second and errors for three workloads:
//   nonce  - issuing nonces (autocannon, 16 connections, fixed duration)
//   login  - pre-signed SIWE logins, each over its own fresh nonce (autocannon, LOGIN_SECONDS;
//            a fixed count would end on autocannon's one-second tick and understate the rate)
//   session - an authenticated read over the session one login opened (autocannon, fixed duration):
//            gantry GET /profile (access-token check, then the account and its identities from
//            Postgres), the peer GET /personal_information (its in-memory session)
//   flow   - the whole sign-in: nonce -> sign -> login, 16 concurrent users (node:http), fixed duration,
//            spread over THREADS worker threads (2), so that signing (about 0.4 ms a message in
//            ethers) does not make one client thread the bottleneck
// Settings: CONNECTIONS (16), SECONDS (8), LOGIN_SECONDS (3), LOGINS (pre-signed: 15000 gantry,
// 2500 peer, room for 5000 and 830 logins a second; a body used twice would be a replay, which
// gantry refuses and counts as an error, so running out shows as errors),
// THREADS (2), WORKLOADS (nonce,login,session,flow: the ones to run).
const autocannon = require("autocannon");
const http = require("node:http");
const { ethers } = require("ethers");
const { Worker, isMainThread, workerData, parentPort } = require("node:worker_threads");

const [kind, base] = isMainThread ? process.argv.slice(2) : [workerData.kind, workerData.base];
const connections = Number(process.env.CONNECTIONS || 16);
const seconds = Number(process.env.SECONDS || 8);
const logins = Number(process.env.LOGINS || (kind === "gantry" ? 15000 : 2500));
const loginSeconds = Number(process.env.LOGIN_SECONDS || 3);
const threads = Number(process.env.THREADS || 2);
const domain = "bench.example";
const json = { "content-type": "application/json" };

function message(address, nonce) {
  const now = new Date();
  return `${domain} wants you to sign in with your Ethereum account:\n${address}\n\n` +
    `Sign in to the benchmark.\n\nURI: https://${domain}/\nVersion: 1\nChain ID: 1\nNonce: ${nonce}\n` +
    `Issued At: ${now.toISOString()}\nExpiration Time: ${new Date(now.getTime() + 10 * 60000).toISOString()}`;
}

// One keep-alive HTTP/1.1 request with node:http. Not fetch: in node 20 fetch spent 0.55 ms of CPU
// per request here against 0.12 ms for node:http (measured), and the client shares the machine's
// cores with the server it measures, so a costly client compresses every ratio.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
function request(method, path, { body, headers } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, {
      method, agent,
      headers: body === undefined ? headers : { ...headers, "content-length": Buffer.byteLength(body) },
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

// The two servers' APIs, behind one shape: nonce() -> {nonce, cookie}; login(body, cookie).
const api = {
  gantry: {
    nonceRequest: { method: "POST", path: "/auth/nonce", headers: json, body: "{}" },
    async nonce() {
      const r = await request("POST", "/auth/nonce", { headers: json, body: "{}" });
      if (r.status !== 201) throw new Error(`nonce: ${r.status}`);
      return { nonce: JSON.parse(r.text).nonce, cookie: null };
    },
    loginPath: "/login-blockchain",
    sessionPath: "/profile",
    sessionHeaders: (response) => ({ authorization: `Bearer ${JSON.parse(response.text).access_token}` }),
    async login(body) {
      return (await request("POST", "/login-blockchain", { headers: json, body })).status === 200;
    },
  },
  peer: {
    nonceRequest: { method: "GET", path: "/nonce" },
    async nonce() {
      const r = await request("GET", "/nonce");
      if (r.status !== 200) throw new Error(`nonce: ${r.status}`);
      const cookie = (r.headers["set-cookie"] || [""])[0].split(";")[0];
      return { nonce: r.text, cookie };
    },
    loginPath: "/verify",
    sessionPath: "/personal_information",
    sessionHeaders: (response, cookie) => ({ cookie: ((response.headers["set-cookie"] || [])[0] || cookie).split(";")[0] }),
    async login(body, cookie) {
      return (await request("POST", "/verify", { headers: { ...json, cookie }, body })).status === 200;
    },
  },
}[kind];
if (!api) throw new Error(`unknown server kind ${kind}`);

const wallets = isMainThread
  ? Array.from({ length: connections }, () => ethers.Wallet.createRandom())
  : workerData.keys.map((k) => new ethers.Wallet(k));

async function register() {
  if (kind !== "gantry") return;
  for (const w of wallets) {
    const { nonce } = await api.nonce();
    const text = message(w.address, nonce);
    const r = await request("POST", "/register-blockchain", {
      headers: json, body: JSON.stringify({ message: text, signature: w.signMessageSync(text) }),
    });
    if (r.status !== 201) throw new Error(`register: ${r.status} ${r.text}`);
  }
}

function cannon(opts) {
  return new Promise((resolve, reject) => {
    autocannon({ url: base, connections, ...opts }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

// Timed here (autocannon's own duration is whole seconds for a fixed count).
async function timed(run) {
  const started = process.hrtime.bigint();
  const result = await run();
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const ok = result["2xx"];
  const errors = result.non2xx + result.errors + result.timeouts;
  return { rps: Math.round(ok / secs), ok, errors, seconds: Number(secs.toFixed(2)) };
}

async function nonceLoad() {
  const r = api.nonceRequest;
  return timed(() => cannon({ duration: seconds, method: r.method, headers: r.headers, body: r.body, requests: [{ path: r.path }] }));
}

async function loginLoad() {
  // Pre-sign: each login has its own fresh nonce (and, for the peer, that nonce's session).
  const bodies = [];
  for (let i = 0; i < logins; i++) {
    const w = wallets[i % wallets.length];
    const { nonce, cookie } = await api.nonce();
    const text = message(w.address, nonce);
    bodies.push({ body: JSON.stringify({ message: text, signature: w.signMessageSync(text) }), cookie });
  }
  let next = 0;
  return timed(() => cannon({
    duration: loginSeconds,
    requests: [{
      method: "POST",
      path: api.loginPath,
      setupRequest: (req) => {
        const b = bodies[next++ % bodies.length];
        return { ...req, headers: { ...json, ...(b.cookie ? { cookie: b.cookie } : {}) }, body: b.body };
      },
    }],
  }));
}

async function sessionLoad() {
  const w = wallets[0];
  const { nonce, cookie } = await api.nonce();
  const text = message(w.address, nonce);
  const body = JSON.stringify({ message: text, signature: w.signMessageSync(text) });
  const r = await request("POST", api.loginPath, { headers: { ...json, ...(cookie ? { cookie } : {}) }, body });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${r.text}`);
  const headers = api.sessionHeaders(r, cookie);
  const check = await request("GET", api.sessionPath, { headers });
  if (check.status !== 200) throw new Error(`session read: ${check.status} ${check.text}`);
  return timed(() => cannon({ duration: seconds, method: "GET", headers, requests: [{ path: api.sessionPath }] }));
}

// One thread's users, until `end`.
async function flowUsers(users, end) {
  let ok = 0, errors = 0;
  await Promise.all(users.map(async (w) => {
    while (Date.now() < end) {
      try {
        const { nonce, cookie } = await api.nonce();
        const text = message(w.address, nonce);
        const body = JSON.stringify({ message: text, signature: w.signMessageSync(text) });
        (await api.login(body, cookie)) ? ok++ : errors++;
      } catch {
        errors++;
      }
    }
  }));
  return { ok, errors };
}

async function flowLoad() {
  const end = Date.now() + seconds * 1000;
  const started = process.hrtime.bigint();
  const shares = Array.from({ length: threads }, (_, t) => wallets.filter((_, i) => i % threads === t));
  const parts = await Promise.all(shares.map((share) => new Promise((resolve, reject) => {
    const worker = new Worker(__filename, { workerData: { kind, base, end, keys: share.map((w) => w.privateKey) } });
    worker.once("message", resolve);
    worker.once("error", reject);
  })));
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const ok = parts.reduce((n, p) => n + p.ok, 0);
  const errors = parts.reduce((n, p) => n + p.errors, 0);
  return { rps: Math.round(ok / secs), ok, errors, seconds: Number(secs.toFixed(2)) };
}

if (!isMainThread) {
  flowUsers(wallets, workerData.end).then((r) => parentPort.postMessage(r));
} else (async () => {
  await register();
  const skip = { rps: 0, ok: 0, errors: 0, seconds: 0 };
  const only = (process.env.WORKLOADS || "nonce,login,session,flow").split(",");
  const nonce = only.includes("nonce") ? await nonceLoad() : skip;
  const login = only.includes("login") ? await loginLoad() : skip;
  const session = only.includes("session") ? await sessionLoad() : skip;
  const flow = only.includes("flow") ? await flowLoad() : skip;
  console.log(JSON.stringify({ kind, nonce, login, session, flow }));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
