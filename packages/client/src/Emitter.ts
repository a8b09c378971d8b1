/**
 * A minimal typed event emitter that works the same in Node and browsers.
 * @module
 */

/** Listener signature for an event map. */
export type Listener<T> = (payload: T) => void

/** Typed event emitter; listeners that throw are reported to `onListenerError`, never to the emitter. */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>()
  readonly #onListenerError: (err: unknown) => void

  /** @param onListenerError - called when a listener throws */
  constructor(onListenerError: (err: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) {
      set = new Set()
      this.#listeners.set(event, set)
    }
    set.add(listener as Listener<never>)
    return () => this.off(event, listener)
  }

  /** Removes a listener. */
  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>)
  }

  /** Calls every listener of `event` with `payload`; returns whether there was any. */
  emit<K extends keyof Events>(event: K, payload: Events[K]): boolean {
    const set = this.#listeners.get(event)
    if (set === undefined || set.size === 0) return false
    for (const l of [...set]) {
      try {
        ;(l as Listener<Events[K]>)(payload)
      } catch (err) {
        this.#onListenerError(err)
      }
    }
    return true
  }

  /** Number of listeners of `event`. */
  listenerCount<K extends keyof Events>(event: K): number {
    return this.#listeners.get(event)?.size ?? 0
  }
}
