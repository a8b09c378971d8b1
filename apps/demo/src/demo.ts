// The demo page's script: two panes, each a Parley client with its own IndexedDB database, so the two
// are distinct devices. Bundled with the SDK into dist/demo.js by lib/index.ts (`pnpm --filter @parley/demo build`,
// or on the relay's first request of /demo.js).
import { type ConversationMessage, createClient, type MessageState, type ParleyClient } from '@parley/browser'

/** How often a typing indicator is sent again while the user goes on typing, and when a silent peer lapses. */
const TYPING_REPEAT_MS = 3000
const TYPING_LAPSE_MS = 6000
/** Largest file the demo sends (the relay's own limit is 100 MiB by default). */
const MAX_FILE_BYTES = 10 * 1024 * 1024

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
  #unsubscribe: (() => void)[] = []
  /** Images of this session by message id (object URLs): sent ones from the file, received ones once fetched. */
  readonly #images = new Map<string, string>()
  /** When this pane last told the peer it is typing (0: it has not, or said it stopped). */
  #typingSentAt = 0
  #peerTypingTimer: ReturnType<typeof setTimeout> | null = null
  /** A render is running; another was asked for meanwhile. */
  #rendering: Promise<void> | null = null
  #renderAgain = false

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
    this.#input('group-create', 'members').value =
      `${root.dataset.peer ?? ''}, ${root.dataset.sms ?? ''}`.replace(/^, |, $/g, '')
    this.#on('group-create', (form) => this.#createGroup(form))
    this.#on('group-compose', (form) => this.#sendGroup(form))
    this.#input('compose', 'text').addEventListener('input', () => void this.#typing())
    const file = this.#input('compose', 'file')
    file.addEventListener('change', () => {
      const picked = file.files?.[0]
      file.value = ''
      if (picked !== undefined) void this.#busy(el(this.#root, 'attach'), () => this.#sendFile(picked))
    })
    el(root, 'reset').addEventListener('click', () => this.#busy(el(root, 'reset'), () => this.#reset()))
  }

  async start(): Promise<void> {
    const client = await createClient({
      relayUrl,
      storeName: this.#storeName,
      defaultRegion: 'US',
      reconnect: { minDelayMs: 250, maxDelayMs: 5000 },
      // The demo has no phone to text from: show what would have gone by SMS instead.
      smsFallback: (to, text, context) => this.#smsSent(to, text, context?.group?.name),
    })
    this.#client = client
    const render = () => this.#render()
    this.#unsubscribe = [
      client.on('connection', ({ state }) => this.#state(state)),
      client.on('message', (m) => {
        this.#peerTyping(false)
        render()
        if (m.group !== undefined) void this.#drawGroup()
        else void this.#refreshSafety()
      }),
      client.on('groupUpdated', ({ group }) => {
        this.#save('group', group.id)
        void this.#drawGroup()
      }),
      client.on('delivered', () => {
        render()
        void this.#drawGroup()
      }),
      client.on('receipt', render),
      client.on('sentBySms', render),
      client.on('reaction', render),
      client.on('messageEdited', render),
      client.on('messageDeleted', render),
      client.on('sendFailed', ({ error }) => {
        render()
        this.#error(error)
      }),
      client.on('typing', ({ started }) => this.#peerTyping(started)),
      client.on('identityChanged', ({ number, safetyNumber }) => {
        this.#error(
          `${number ?? 'A contact'} has a new device. New safety number: ${formatSafety(safetyNumber)}`,
        )
        void this.#refreshSafety()
      }),
    ]
    this.#state(client.activated ? client.connectionState : 'off')
    if (client.activated) this.#showChat()
    else if (this.#load('pending') !== null) this.#showConfirm(this.#load('pending') ?? '')
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
    this.#render()
    await this.#refreshSafety()
  }

  async #send(form: HTMLFormElement): Promise<void> {
    const input = this.#input('compose', 'text')
    const text = input.value
    await this.#stopTyping()
    await this.#require().send(this.#peer(), text)
    input.value = ''
    form.querySelector('input')?.focus()
    this.#render()
    await this.#refreshSafety()
  }

  /** Creates a group of this device and the numbers typed (those not on Parley are reached by SMS). */
  async #createGroup(form: HTMLFormElement): Promise<void> {
    const numbers = String(new FormData(form).get('members'))
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== '')
    const group = await this.#require().createGroup({
      name: `${el(this.#root, 'title').textContent}'s group`,
      members: numbers,
    })
    this.#save('group', group.id)
    await this.#drawGroup()
  }

  async #sendGroup(form: HTMLFormElement): Promise<void> {
    const id = this.#load('group')
    if (id === null) throw new Error('Create a group first.')
    const input = this.#input('group-compose', 'text')
    await this.#require().sendGroup(id, input.value)
    input.value = ''
    form.querySelector('input')?.focus()
    await this.#drawGroup()
  }

  /** What this device's SMS hook was given (the demo has no phone: it shows the text instead). */
  #smsSent(to: string, text: string, group: string | undefined): void {
    const li = document.createElement('li')
    li.textContent = `SMS to ${to}${group === undefined ? '' : ` (${group})`}: ${text}`
    el(this.#root, 'sms-log').append(li)
  }

  /** Shows the group: its name, members and routes, and its conversation. */
  async #drawGroup(): Promise<void> {
    const client = this.#client
    const id = this.#load('group')
    if (client === null || !client.activated || id === null) return
    const group = await client.group(id)
    if (group === null) return
    const members = group.members
      .map(
        (m) =>
          `${m.self ? 'you' : (m.number ?? 'someone')}${m.admin ? ' (admin)' : ''}${m.route === 'sms' ? ' · SMS' : ''}`,
      )
      .join(', ')
    el(this.#root, 'group-info').textContent = group.left
      ? `You left “${group.name}”.`
      : `“${group.name}”: ${members}`
    el(this.#root, 'group-compose').hidden = group.left
    el(this.#root, 'group-create').hidden = !group.left
    const conversation = (await client.conversations()).find((c) => c.group === id)
    const list = el(this.#root, 'group-messages')
    if (conversation === undefined) {
      list.replaceChildren()
      return
    }
    const { messages } = await client.conversationHistory(conversation.id, { limit: 100 })
    list.replaceChildren(
      ...messages.map((m) => {
        const li = this.#item(m)
        if (!m.outgoing) li.prepend(`${m.from ?? 'someone'}: `)
        return li
      }),
    )
    list.scrollTop = list.scrollHeight
  }

  /** Sends a picked file end to end (the relay holds only its encrypted blob, until the peer fetched it). */
  async #sendFile(file: File): Promise<void> {
    if (file.size > MAX_FILE_BYTES) throw new Error('The demo sends files of up to 10 MiB.')
    const data = new Uint8Array(await file.arrayBuffer())
    const { id } = await this.#require().sendAttachment(this.#peer(), {
      data,
      ...(file.type ? { mimeType: file.type } : {}),
      fileName: file.name,
    })
    if (file.type.startsWith('image/')) this.#images.set(id, URL.createObjectURL(file))
    this.#render()
  }

  /** While the user types: tells the peer, again every few seconds, and that it stopped after a pause. */
  async #typing(): Promise<void> {
    const client = this.#client
    if (client === null || !client.activated || this.#peer() === '') return
    const now = Date.now()
    if (now - this.#typingSentAt < TYPING_REPEAT_MS) return
    this.#typingSentAt = now
    await client.typing(this.#peer()).catch(() => false)
  }

  async #stopTyping(): Promise<void> {
    if (this.#typingSentAt === 0) return
    this.#typingSentAt = 0
    await this.#client?.typing(this.#peer(), false).catch(() => false)
  }

  /** Shows (or hides) that the peer is typing; a `started` without a follow-up lapses on its own. */
  #peerTyping(started: boolean): void {
    const line = el(this.#root, 'typing')
    if (this.#peerTypingTimer !== null) clearTimeout(this.#peerTypingTimer)
    this.#peerTypingTimer = null
    line.textContent = started ? `${this.#peer()} is typing…` : ''
    if (started) this.#peerTypingTimer = setTimeout(() => this.#peerTyping(false), TYPING_LAPSE_MS)
  }

  #peer(): string {
    return this.#input('discover', 'peer').value
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
    for (const name of ['peer', 'pending', 'me', 'group']) localStorage.removeItem(this.#key(name))
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
    void this.#drawGroup()
  }

  /** Renders the conversation with the peer (one render at a time; a request meanwhile renders once more). */
  #render(): void {
    if (this.#rendering !== null) {
      this.#renderAgain = true
      return
    }
    this.#rendering = this.#draw()
      .catch((err: unknown) => this.#error(err))
      .finally(() => {
        this.#rendering = null
        if (this.#renderAgain) {
          this.#renderAgain = false
          this.#render()
        }
      })
  }

  async #draw(): Promise<void> {
    const client = this.#client
    const peer = this.#peer()
    if (client === null || !client.activated || peer === '') return
    const { messages } = await client.conversationHistory(peer, { limit: 100 })
    const list = el(this.#root, 'messages')
    list.replaceChildren(...messages.map((m) => this.#item(m)))
    list.scrollTop = list.scrollHeight
    // The pane is on screen: what it shows is read, and the peer's read receipt moves its ticks.
    if (messages.some((m) => !m.outgoing && !m.read) && document.visibilityState === 'visible') {
      await client.markRead(peer)
    }
    const n = await client.pendingCount()
    el(this.#root, 'queued').textContent =
      n === 0 ? '' : `${n} message${n === 1 ? '' : 's'} waiting in the outbox`
  }

  #item(m: ConversationMessage): HTMLLIElement {
    const li = document.createElement('li')
    li.className = `msg ${m.outgoing ? 'out' : 'in'}`
    li.dataset.id = m.id
    if (m.outgoing) li.dataset.state = m.state
    const a = m.attachment
    if (a !== undefined) {
      const url = this.#images.get(m.id)
      if (url !== undefined) {
        const img = document.createElement('img')
        img.src = url
        img.alt = a.fileName ?? 'image'
        img.dataset.testid = 'image'
        // Its height is known only once it loaded: keep the newest message in view.
        img.addEventListener('load', () => {
          const list = el(this.#root, 'messages')
          list.scrollTop = list.scrollHeight
        })
        li.append(img)
      } else {
        const open = document.createElement('button')
        open.type = 'button'
        open.className = 'link'
        open.textContent = `File: ${a.fileName ?? 'file'} (${Math.ceil(a.size / 1024)} KiB)`
        open.addEventListener('click', () => void this.#busy(open, () => this.#open(m)))
        li.append(open)
        if (!m.outgoing && a.mimeType?.startsWith('image/')) void this.#busy(open, () => this.#open(m))
      }
    }
    if (m.text !== '') li.append(m.text)
    const small = document.createElement('small')
    const at = (m.receivedAt ?? m.sentAt).getTime()
    small.textContent = m.outgoing ? `${time(at)} · ${LABELS[m.state]}` : time(at)
    li.append(small)
    return li
  }

  /** Fetches and decrypts a message's file: an image is shown in place, anything else saved. */
  async #open(m: ConversationMessage): Promise<void> {
    if (this.#images.has(m.id)) return
    const bytes = await this.#require().downloadAttachment(m.id)
    const blob = new Blob([new Uint8Array(bytes)], {
      type: m.attachment?.mimeType ?? 'application/octet-stream',
    })
    const url = URL.createObjectURL(blob)
    if (m.attachment?.mimeType?.startsWith('image/')) {
      this.#images.set(m.id, url)
      this.#render()
      return
    }
    const link = document.createElement('a')
    link.href = url
    link.download = m.attachment?.fileName ?? 'file'
    link.click()
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

const LABELS: Record<MessageState, string> = {
  queued: 'queued',
  sent: 'sent ✓',
  delivered: 'delivered ✓✓',
  read: 'read ✓✓',
  failed: 'failed',
  sms: 'sent by SMS',
  received: '',
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
