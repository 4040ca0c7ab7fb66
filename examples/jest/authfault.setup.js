// Jest setup file: a test that switched a scenario on and failed before
// switching it off does not leave it on for the next test.
//
// jest.config.js:
//   module.exports = { setupFilesAfterEnv: ["./authfault.setup.js"] };
//
// In a test:
//   const { withScenario, scenarioHeader } = require("./authfault");
//   test("orders reject an expired token", () =>
//     withScenario("expired", async () => {
//       expect((await api.get("/v1/orders")).status).toBe(401);
//     }));
//   // Parallel-safe across Jest workers: this one request only.
//   test("orders reject a missing token", async () => {
//     const res = await api.get("/v1/orders", { headers: scenarioHeader("missing") });
//     expect(res.status).toBe(401);
//   });
"use strict";

const { isSwitchedOn, switchOff } = require("./authfault");

// Only a scenario this worker switched on is switched off: other workers may
// be running their own (per-request headers are the parallel-safe way).
afterEach(async () => {
  if (isSwitchedOn()) await switchOff();
});
