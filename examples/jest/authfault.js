// A client for authfault's admin API, for Jest (or any Node.js test runner).
//
// Reads AUTHFAULT_ADMIN_URL (set by `authfault exec`, or by your CI job for
// a sidecar) and AUTHFAULT_ADMIN_TOKEN. It uses node:http, which never goes
// through HTTP(S)_PROXY, so admin calls are not recorded as exchanges.
"use strict";

const http = require("node:http");
const https = require("node:https");

const ADMIN_URL = (process.env.AUTHFAULT_ADMIN_URL ?? "http://127.0.0.1:8081").replace(/\/$/, "");

/** One admin call; resolves to the decoded JSON answer. */
function admin(method, path, body) {
  const url = new URL(ADMIN_URL + path);
  const headers = { "content-type": "application/json" };
  if (process.env.AUTHFAULT_ADMIN_TOKEN) {
    headers.authorization = `Bearer ${process.env.AUTHFAULT_ADMIN_TOKEN}`;
  }
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { method, headers, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => {
        if (res.statusCode >= 400) {
          reject(new Error(`authfault ${method} ${path}: ${res.statusCode} ${text}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (err) {
          reject(new Error(`authfault ${method} ${path}: not JSON: ${err.message}`));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`authfault ${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}

// Whether this process switched a scenario on and has not switched it off.
let switched = false;

/** Switches a scenario on for every request that starts from now on. */
async function switchOn(name) {
  const answer = await admin("PUT", "/scenario", { name });
  switched = true;
  return answer;
}

/** Switches the scenario off: the rules' enabled flags decide again. */
async function switchOff() {
  const answer = await admin("DELETE", "/scenario");
  switched = false;
  return answer;
}

/** Whether a scenario this process switched on is still on. */
const isSwitchedOn = () => switched;

/** Runs `fn` with a scenario switched on for the whole proxy. */
async function withScenario(name, fn) {
  await switchOn(name);
  try {
    return await fn();
  } finally {
    await switchOff();
  }
}

/** Headers that pick a scenario for one request alone (parallel-safe). */
const scenarioHeader = (name) => ({ "x-authfault-scenario": name });

/** The verdict summary so far (`authfault report --format json`). */
const report = () => admin("GET", "/report");

module.exports = { admin, switchOn, switchOff, isSwitchedOn, withScenario, scenarioHeader, report };
