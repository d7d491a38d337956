// GET /train: one RAdam step, answered as "<backend>: <parameters>", as README.md's Worker
// (defineEventHandler is one of Nitro's auto-imports).
import { radam, readParams, step } from "@optim/radam";

export default defineEventHandler(async () => {
  let state = await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2, 3]) });
  state = step(state, { w: new Float32Array([0.5, -0.5, 1]) });
  const { w } = await readParams(state);
  return `${state.backend}: ${w.join(", ")}`;
});
