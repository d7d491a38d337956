/**
 * Whose fault a refused command buffer was: when the GPU refuses commands that read buffers of
 * the caller's, a probe that uses those buffers alone (no kernel of the library's) tells a
 * buffer destroyed or of another device from a refusal of the library's own commands (a
 * pipeline the driver did not compile, say), so that the error blames the right one.
 *
 * @module
 */

/**
 * Whether `device` refuses a command buffer that uses `buffers` alone (each as the library
 * uses it: a 4-byte copy from a buffer with COPY_SRC usage, else a storage binding in a compute
 * pass): `true` when some buffer is destroyed or of another device, `false` when they are all
 * live and of `device`, `undefined` when that cannot be told (a lost device). Submits one
 * command buffer that writes nothing of the caller's or the state's; never rejects.
 *
 * @example
 * ```ts ignore
 * if (await buffersRefused(device, [gradBuffer]) === false) {
 *   // the refusal was of the library's own commands
 * }
 * ```
 */
export async function buffersRefused(
  device: GPUDevice,
  buffers: readonly GPUBuffer[],
): Promise<boolean | undefined> {
  let scratch: GPUBuffer | undefined;
  let scoped = false;
  try {
    device.pushErrorScope("validation");
    scoped = true;
    scratch = device.createBuffer({
      label: "radam buffer probe",
      size: 4,
      usage: GPUBufferUsage.COPY_DST,
    });
    const encoder = device.createCommandEncoder();
    const bound: GPUBuffer[] = [];
    for (const buffer of new Set(buffers)) {
      if (buffer.size < 4) continue;
      if ((buffer.usage & GPUBufferUsage.COPY_SRC) !== 0) {
        encoder.copyBufferToBuffer(buffer, 0, scratch, 0, 4);
      } else if ((buffer.usage & GPUBufferUsage.STORAGE) !== 0) bound.push(buffer);
    }
    if (bound.length > 0) {
      const layout = device.createBindGroupLayout({
        label: "radam buffer probe",
        entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } }],
      });
      const pass = encoder.beginComputePass();
      for (const buffer of bound) {
        pass.setBindGroup(
          0,
          device.createBindGroup({
            label: "radam buffer probe",
            layout,
            entries: [{ binding: 0, resource: { buffer, offset: 0, size: 4 } }],
          }),
        );
      }
      pass.end();
    }
    device.queue.submit([encoder.finish()]);
    scoped = false;
    return (await device.popErrorScope()) !== null;
  } catch {
    if (scoped) device.popErrorScope().catch(() => {});
    return undefined;
  } finally {
    scratch?.destroy();
  }
}

/**
 * The error of a step whose command buffer the GPU refused (`error`), which read `buffers` of
 * the caller's (`which` names them): where the GPU takes those buffers alone
 * ({@linkcode buffersRefused}), it refused the library's own commands, and the error says so;
 * else a TypeError: they must be live buffers of the state's device.
 *
 * @example
 * ```ts ignore
 * const e = await refusalError(device, gpuError, 'the gradient of parameter "w"', [gradBuffer]);
 * ```
 */
export async function refusalError(
  device: GPUDevice,
  error: GPUError,
  which: string,
  buffers: readonly GPUBuffer[],
): Promise<Error> {
  if (await buffersRefused(device, buffers) === false) {
    return new Error(
      `The GPU refused the library's own commands of a step (${error.message}): the buffers it reads of yours (${which}) are live GPUBuffers of the state's device, so the fault is not theirs but of this library or of the GPU's driver; that step was not taken (nothing of it ran)`,
    );
  }
  return new TypeError(
    `The GPU refused a step (${error.message}): the buffers it reads of yours (${which}) must be live GPUBuffers (not destroyed) of the state's device; that step was not taken (nothing of it ran)`,
  );
}
