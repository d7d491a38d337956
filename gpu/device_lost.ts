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
