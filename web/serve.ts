/**
 * A tiny static file server for the built demo page, on the loopback interface only:
 * `deno task web:serve` (after building) serves `web-dist/` on http://127.0.0.1:8000/.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read=web-dist web/serve.ts [--port 8000]
 * ```
 *
 * @module
 */

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
  wasm: "application/wasm",
  bin: "application/octet-stream",
  png: "image/png",
  txt: "text/plain; charset=utf-8",
};

/** Serves the files of `root` on 127.0.0.1:`port` (0: any free port) until `signal` aborts. */
export function serveStatic(
  root: string,
  options: { port?: number; signal?: AbortSignal; onListen?: (port: number) => void } = {},
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 8000,
    signal: options.signal,
    onListen: ({ port }) => options.onListen?.(port),
  }, async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed", { status: 405 });
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(request.url).pathname);
    } catch {
      // A malformed percent-escape (a URIError): the request's fault, not the server's.
      return new Response("bad request: malformed percent-escape in the path", { status: 400 });
    }
    if (path.endsWith("/")) path += "index.html";
    // only plain names under root: no "..", no hidden files
    if (
      !/^(\/[\w-][\w.-]*)+$/.test(path) ||
      path.split("/").some((p) => p === ".." || p.startsWith("."))
    ) {
      return new Response("not found", { status: 404 });
    }
    try {
      const body = await Deno.readFile(`${root}${path}`);
      const type = TYPES[path.slice(path.lastIndexOf(".") + 1)] ?? "application/octet-stream";
      return new Response(request.method === "HEAD" ? null : body, {
        headers: { "content-type": type, "cache-control": "no-cache" },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--port");
  const port = at >= 0 ? Number(Deno.args[at + 1]) : 8000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`error: --port must be a port number, got "${Deno.args[at + 1]}"`);
    Deno.exit(2);
  }
  serveStatic("web-dist", {
    port,
    onListen: (p) => console.log(`serving web-dist/ on http://127.0.0.1:${p}/ (Ctrl-C stops)`),
  });
}
