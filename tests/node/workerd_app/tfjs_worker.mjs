// A Cloudflare Worker that trains with TensorFlow.js, as most users do: tfjs-core, tfjs-layers and
// tfjs-backend-cpu bundled with the package's adapter (`@optim/radam/tfjs`) and its kernel
// imported as a compiled module. Bundled by esbuild and run in workerd by ../workerd.test.mjs,
// with wrangler's conditions (the package's workerd entries) and without. GET /tfjs: model.fit
// with tfOptimizer(radam()) before any setWasmModule, then after it (32-bit and 8-bit states):
// the adapter's backend and the final weights' bits.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { radam, setWasmModule } from "@optim/radam";
import { tfOptimizer } from "@optim/radam/tfjs";
import kernel from "@optim/radam/radam.wasm";
import { tfjsFitCase } from "../shared_case.mjs";

tf.env().set("PROD", true);

async function runAll() {
  const without = await tfjsFitCase(tf, tfl, { radam }, tfOptimizer, "32bit");
  setWasmModule(kernel);
  const given = {
    radam: await tfjsFitCase(tf, tfl, { radam }, tfOptimizer, "32bit"),
    radam8bit: await tfjsFitCase(tf, tfl, { radam }, tfOptimizer, "8bit"),
  };
  return { without, given };
}

export default {
  async fetch(request) {
    if (new URL(request.url).pathname !== "/tfjs") return new Response(null, { status: 404 });
    try {
      return Response.json(await runAll());
    } catch (e) {
      return Response.json({ error: String(e && e.stack || e) }, { status: 500 });
    }
  },
};
