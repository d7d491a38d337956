/**
 * What a failed `mapAsync` of one of the state's own buffers means. A map cut short by the loss
 * of the device (`device.destroy()`, a driver reset) rejects with an `AbortError` at once, while
 * `device.lost` resolves later (Chromium, Dawn); a map begun just after the loss, before
 * `device.lost` resolves, fails a validation (an `OperationError`, Deno's wgpu). The read would
 * then fail with the map's own words ("Buffer was unmapped before mapping was resolved",
 * "validation error occurred") rather than say that the device was lost and how to resume.
 *
 * @module
 */

/**
 * After a `mapAsync` of a buffer of the state's failed with `error`: throws what `checkUsable`
 * says (the state disposed, or its device lost) and, where the map was aborted (an
 * `AbortError`, which of the library's buffers only the loss of the device or `dispose` causes:
 * `checkUsable` tells the latter at once), first waits for `device.lost`, so that it says the
 * device was lost; after any other failure it waits for `device.lost` one task at most (a
 * device lost a moment before has resolved it by then). Returns (the caller rethrows `error`)
 * when neither is the cause.
 *
 * @example
 * ```ts ignore
 * try {
 *   await buffer.mapAsync(GPUMapMode.READ);
 * } catch (error) {
 *   await explainMapFailure(device, error, checkUsable);
 *   throw error;
 * }
 * ```
 */
export async function explainMapFailure(
  device: GPUDevice,
  error: unknown,
  checkUsable: () => void,
): Promise<void> {
  checkUsable();
  if ((error as { name?: unknown } | null)?.name === "AbortError") await device.lost;
  else {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const task = new Promise<void>((resolve) => timer = setTimeout(resolve, 0));
    await Promise.race([device.lost, task]);
    clearTimeout(timer);
  }
  checkUsable();
}
