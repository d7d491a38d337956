/**
 * A device lost before a state starts on it: `init` or `loadState` given a device destroyed
 * (or lost) earlier says so, rather than reject with the driver's error of a pipeline it could
 * not compile, or start a state that can never step.
 *
 * @module
 */

/**
 * Runs `prepare` (the pipelines' compilation for a state on `device`), then checks that the
 * device is live: where it was lost, rejects with an Error saying so, naming `call` (`init` or
 * `loadState`) and how to go on, rather than with the driver's error of a pipeline it could not
 * compile, or by starting a state that could never step.
 *
 * @example
 * ```ts ignore
 * await prepareOnLiveDevice(device, "init", () => prepareWebGpu(device, rule));
 * ```
 */
export async function prepareOnLiveDevice(
  device: GPUDevice,
  call: string,
  prepare: () => Promise<void>,
): Promise<void> {
  requireDeviceLost(device);
  try {
    await prepare();
  } catch (error) {
    await checkDeviceLive(device, call, true); // the device's loss, said as such
    throw error;
  }
  await checkDeviceLive(device, call);
}

/**
 * Rejects with an Error saying that `device` was lost, naming `call` and how to go on, where its
 * `lost` promise has resolved; with `wait`, also where it resolves within one task (a device
 * destroyed a moment before: `lost` resolves a task later). Else resolves.
 */
async function checkDeviceLive(
  device: GPUDevice,
  call: string,
  wait = false,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const later = wait
    ? new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 0))
    : Promise.resolve(undefined);
  // (An already resolved `lost` wins the race: it is listed first.)
  const info = await Promise.race([device.lost, later]);
  clearTimeout(timer);
  if (info === undefined) return;
  throw new Error(
    `The WebGPU device given to ${call} was lost (${info.reason}: ${info.message}); request a new device from a new adapter, (await navigator.gpu.requestAdapter())?.requestDevice(), and pass that`,
  );
}

/**
 * Throws an Error saying what is missing where `device` has no `lost` promise (Deno before 2.6.4
 * gives none), which the backend needs to tell a lost device; its WebGPU runs the backend from
 * Deno 2.9 on (README, "Deno 2.2.7 or later").
 *
 * @example
 * ```ts ignore
 * requireDeviceLost(device); // before a state starts on it
 * ```
 */
export function requireDeviceLost(device: GPUDevice): void {
  if (typeof (device.lost as Promise<unknown> | undefined)?.then === "function") return;
  throw new Error(
    'The webgpu backend needs GPUDevice.lost, which this runtime\'s WebGPU lacks (Deno before 2.6.4 has none; Deno 2.9 and later run the backend); use backend "wasm" or "js", or a newer runtime',
  );
}
