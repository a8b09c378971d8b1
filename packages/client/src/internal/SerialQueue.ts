// Runs async tasks one at a time, in order. The engine routes every change of session state through one
// queue so that a decrypt and an encrypt for the same contact never interleave. Not exported.

export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()

  /** Runs `task` after every task queued before it; resolves or rejects with its result. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task, task)
    this.#tail = result.catch(() => {})
    return result
  }
}
