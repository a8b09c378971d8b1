// The demo page's script: two panes, each a Parley client with its own IndexedDB database, so the two
// are distinct devices. Bundled with the SDK into dist/demo.js by lib/index.ts (`pnpm --filter @parley/demo build`,
// or on the relay's first request of /demo.js).
import { createClient, type IncomingMessage, type ParleyClient } from '@parley/browser'

interface SentMessage {
  id: string
  to: string
  text: string
  at: number
  state: 'queued' | 'delivered' | 'failed' | 'sms'
}

const params = new URLSearchParams(location.search)
const relayUrl = params.get('relay') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`

function el<T extends HTMLElement = HTMLElement>(root: ParentNode, role: string): T {
  const found = root.querySelector<T>(`[data-role="${role}"]`)
  if (found === null) throw new Error(`missing [data-role=${role}]`)
  return found
}

function describeError(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const e = err as { code: string; message: string; retryAfterMs?: number }
    const wait = e.retryAfterMs ? ` (try again in ${Math.ceil(e.retryAfterMs / 1000)} s)` : ''
    return `${e.code}: ${e.message}${wait}`
  }
  return err instanceof Error ? err.message : String(err)
}

const formatSafety = (s: string) => (/^\d{60}$/.test(s) ? (s.match(/\d{5}/g) ?? []).join(' ') : s)
const time = (at: number) => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })

class Pane {
  readonly #root: HTMLElement
  readonly #id: string
  readonly #storeName: string
  #client: ParleyClient | null = null
  #sent: SentMessage[] = []
  #received: IncomingMessage[] = []
  #unsubscribe: (() => void)[] = []

  constructor(root: HTMLElement) {
    this.#root = root
    this.#id = root.dataset.pane ?? 'a'
    this.#storeName = `parley-demo-${this.#id}`
    const template = document.querySelector<HTMLTemplateElement>('#pane')
    if (template === null) throw new Error('missing #pane template')
    root.append(template.content.cloneNode(true))
    el(root, 'title').textContent = root.dataset.name ?? `Device ${this.#id.toUpperCase()}`
    this.#input('activate', 'number').value = root.dataset.number ?? ''
    this.#input('discover', 'peer').value = this.#load('peer') ?? root.dataset.peer ?? ''
    this.#on('activate', (form) => this.#activate(form))
    this.#on('confirm', (form) => this.#confirm(form))
    this.#on('discover', (form) => this.#discover(form))
    this.#on('compose', (form) => this.#send(form))
    el(root, 'reset').addEventListener('click', () => this.#busy(el(root, 'reset'), () => this.#reset()))
  }

  async start(): Promise<void> {
    this.#sent = JSON.parse(this.#load('sent') ?? '[]') as SentMessage[]
    const client = await createClient({
      relayUrl,
      storeName: this.#storeName,
      defaultRegion: 'US',
      reconnect: { minDelayMs: 250, maxDelayMs: 5000 },
      // The demo has no phone to text from: show what would have gone by SMS instead.
      smsFallback: () => {},
    })
    this.#client = client
    this.#unsubscribe = [
      client.on('connection', ({ state }) => this.#state(state)),
      client.on('message', (m) => {
        this.#received.push(m)
        this.#render()
        void this.#refreshSafety()
      }),
      client.on('delivered', ({ id }) => this.#mark(id, 'delivered')),
      client.on('sendFailed', ({ id, error }) => {
        this.#mark(id, 'failed')
        this.#error(error)
      }),
      client.on('identityChanged', ({ number, safetyNumber }) => {
        this.#error(
          `${number ?? 'A contact'} has a new device. New safety number: ${formatSafety(safetyNumber)}`,
        )
        void this.#refreshSafety()
      }),
    ]
    this.#state(client.activated ? client.connectionState : 'off')
    if (client.activated) {
      this.#received = await client.history()
      this.#showChat()
    } else if (this.#load('pending') !== null) {
      this.#showConfirm(this.#load('pending') ?? '')
    }
  }

  async #activate(form: HTMLFormElement): Promise<void> {
    const data = new FormData(form)
    if (data.get('consent') !== 'on')
      throw new Error('Tick the box to agree first: nothing is sent without it.')
    const pending = await this.#require().activate({ phoneNumber: String(data.get('number')), consent: true })
    this.#save('pending', pending.e164)
    this.#showConfirm(pending.e164)
  }

  async #confirm(form: HTMLFormElement): Promise<void> {
    const code = String(new FormData(form).get('code')).trim()
    await this.#require().confirm(code)
    this.#save('me', this.#load('pending') ?? '')
    localStorage.removeItem(this.#key('pending'))
    this.#showChat()
  }

  async #discover(form: HTMLFormElement): Promise<void> {
    const peer = String(new FormData(form).get('peer'))
    const [result] = await this.#require().discover([peer])
    const found = el(this.#root, 'found')
    if (result === undefined || result.e164 === null) {
      found.textContent = `“${peer}” is not a valid number.`
      found.dataset.registered = 'false'
      return
    }
    this.#save('peer', peer)
    found.dataset.registered = String(result.registered)
    found.textContent = result.registered
      ? `✓ ${result.e164} is on Parley — messages are end-to-end encrypted.`
      : `${result.e164} is not on Parley — messages would go by SMS.`
    await this.#refreshSafety()
  }

  async #send(form: HTMLFormElement): Promise<void> {
    const input = this.#input('compose', 'text')
    const peer = this.#input('discover', 'peer').value
    const text = input.value
    const { id, route } = await this.#require().send(peer, text)
    this.#sent.push({ id, to: peer, text, at: Date.now(), state: route === 'sms' ? 'sms' : 'queued' })
    this.#save('sent', JSON.stringify(this.#sent))
    input.value = ''
    form.querySelector('input')?.focus()
    this.#render()
    await this.#refreshSafety()
  }

  async #reset(): Promise<void> {
    const client = this.#client
    if (client?.activated && client.connectionState === 'online') await client.deactivate().catch(() => {})
    for (const off of this.#unsubscribe) off()
    await client?.close()
    this.#client = null
    await new Promise<void>((resolve) => {
      const request = indexedDB.deleteDatabase(this.#storeName)
      request.onsuccess = request.onerror = request.onblocked = () => resolve()
    })
    for (const name of ['sent', 'peer', 'pending', 'me']) localStorage.removeItem(this.#key(name))
    location.reload()
  }

  #showConfirm(e164: string): void {
    el(this.#root, 'e164').textContent = e164
    el(this.#root, 'activate').hidden = true
    el(this.#root, 'confirm').hidden = false
    this.#input('confirm', 'code').focus()
  }

  #showChat(): void {
    const client = this.#require()
    el(this.#root, 'activate').hidden = true
    el(this.#root, 'confirm').hidden = true
    el(this.#root, 'chat').hidden = false
    el(this.#root, 'me').textContent = this.#load('me') || 'activated'
    el(this.#root, 'address').textContent = `${client.address?.slice(0, 16)}…`
    this.#render()
    void this.#refreshSafety()
  }

  #render(): void {
    const list = el(this.#root, 'messages')
    const items: { at: number; out: boolean; text: string; meta: string; state?: SentMessage['state'] }[] = [
      ...this.#received.map((m) => ({
        at: m.receivedAt.getTime(),
        out: false,
        text: m.text,
        meta: time(m.receivedAt.getTime()),
      })),
      ...this.#sent.map((m) => ({
        at: m.at,
        out: true,
        text: m.text,
        meta: `${time(m.at)} · ${LABELS[m.state]}`,
        state: m.state,
      })),
    ]
    items.sort((x, y) => x.at - y.at)
    list.replaceChildren(
      ...items.map((item) => {
        const li = document.createElement('li')
        li.className = `msg ${item.out ? 'out' : 'in'}`
        if (item.state !== undefined) li.dataset.state = item.state
        const small = document.createElement('small')
        small.textContent = item.meta
        li.append(item.text, small)
        return li
      }),
    )
    list.scrollTop = list.scrollHeight
    void this.#client?.pendingCount().then(
      (n) => {
        el(this.#root, 'queued').textContent =
          n === 0 ? '' : `${n} message${n === 1 ? '' : 's'} waiting in the outbox`
      },
      () => {},
    )
  }

  #mark(id: string, state: SentMessage['state']): void {
    const message = this.#sent.find((m) => m.id === id)
    if (message === undefined) return
    message.state = state
    this.#save('sent', JSON.stringify(this.#sent))
    this.#render()
  }

  async #refreshSafety(): Promise<void> {
    const client = this.#client
    const peer = this.#input('discover', 'peer').value
    if (client === null || !client.activated || peer === '') return
    const safety = await client.safetyNumber(peer).catch(() => null)
    if (safety !== null) el(this.#root, 'safety').textContent = formatSafety(safety)
  }

  #state(state: string): void {
    const pill = el(this.#root, 'state')
    pill.dataset.state = state
    pill.textContent = state
  }

  #on(role: string, action: (form: HTMLFormElement) => Promise<void>): void {
    const form = el<HTMLFormElement>(this.#root, role)
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const button = form.querySelector('button')
      if (button !== null) void this.#busy(button, () => action(form))
    })
  }

  async #busy(button: HTMLElement, action: () => Promise<void>): Promise<void> {
    button.setAttribute('disabled', '')
    this.#error(null)
    try {
      await action()
    } catch (err) {
      this.#error(err)
    } finally {
      button.removeAttribute('disabled')
    }
  }

  #error(err: unknown): void {
    el(this.#root, 'error').textContent = err === null ? '' : describeError(err)
  }

  #require(): ParleyClient {
    if (this.#client === null) throw new Error('the client is still starting')
    return this.#client
  }

  #input(role: string, name: string): HTMLInputElement {
    const input = el(this.#root, role).querySelector<HTMLInputElement>(`input[name="${name}"]`)
    if (input === null) throw new Error(`missing input ${name}`)
    return input
  }

  #key(name: string): string {
    return `${this.#storeName}/${name}`
  }

  #load(name: string): string | null {
    return localStorage.getItem(this.#key(name))
  }

  #save(name: string, value: string): void {
    localStorage.setItem(this.#key(name), value)
  }
}

const LABELS: Record<SentMessage['state'], string> = {
  queued: 'queued',
  delivered: 'delivered ✓',
  failed: 'failed',
  sms: 'sent by SMS',
}

async function main(): Promise<void> {
  const relay = document.querySelector('#relay')
  if (relay !== null) relay.textContent = relayUrl
  const panes = [...document.querySelectorAll<HTMLElement>('.pane')].map((root) => new Pane(root))
  await Promise.all(panes.map((p) => p.start()))
  document.body.dataset.ready = 'true'
}

main().catch((err: unknown) => {
  document.body.dataset.ready = 'error'
  const box = document.createElement('p')
  box.className = 'error'
  box.textContent = `The demo could not start: ${describeError(err)}`
  document.body.prepend(box)
})
