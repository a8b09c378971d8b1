// The browser SDK, and the demo page (@parley/demo) that a relay serves, in headless Chromium (Debian's package,
// driven by playwright-core) against the real relay process of the contract tests, with codes captured by the
// harness's webhook inbox. Here rather than in packages/browser or apps/demo: a test that runs a relay depends on
// @parley/relay, which depends on @parley/demo and so on @parley/browser, so it can only live downstream of them.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { IncomingMessage, ParleyClient } from '@parley/client'
import * as esbuild from 'esbuild'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// One definition of how the SDK is bundled for the browser; @parley/browser does not publish its scripts.
import { browserOptions } from '../../packages/browser/scripts/esbuildOptions.mjs'
import {
  activatedClient,
  CodeInbox,
  clientDir,
  nodeClient,
  type Relay,
  startRelay,
  until,
} from './harness.js'

const CHROMIUM = '/usr/bin/chromium'
/** Every launch's flags (Playwright makes a fresh profile for launch(); persistent contexts get a fresh dir). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
]
const SCREENSHOT = fileURLToPath(new URL('../../test-results/demo.png', import.meta.url))
const haveChromium = existsSync(CHROMIUM)
const required =
  process.env.PARLEY_REQUIRE_SERVICES !== undefined && process.env.PARLEY_REQUIRE_SERVICES !== ''

const ALICE = '+1 415 555 0140'
const BOB = '+1 415 555 0141'
const CAROL = '+1 415 555 0142' // the Node client
const e164 = (n: string) => `+${n.replace(/\D/g, '')}`

/** @parley/browser as one script that defines the global `Parley`, from its sources (as a user's bundler would). */
async function bundleSdk(): Promise<string> {
  const result = await esbuild.build({
    stdin: {
      contents: "export * from '@parley/browser'",
      resolveDir: fileURLToPath(new URL('.', import.meta.url)),
    },
    ...browserOptions,
    format: 'iife',
    globalName: 'Parley',
    write: false,
  })
  return result.outputFiles[0]!.text
}

if (!haveChromium && !required) {
  console.log(`browser e2e tests skipped: ${CHROMIUM} is missing (apt-get install chromium; CI requires it)`)
}

/** What the test page exposes: the SDK as the global `Parley` and a client made on load. */
interface TestWindow {
  ready: Promise<void>
  client: ParleyClient
  inbox: { id: string; from: string | null; text: string }[]
  delivered: string[]
}

/**
 * The test page, served by a tiny HTTP server of the test on 127.0.0.1 (a page fulfilled by Playwright's
 * routing counts as public and Chromium's local network access checks then block its WebSocket to the relay).
 * It outlives relay restarts, so a page can be reloaded while the relay is down.
 */
function testPage(relayWs: string): string {
  return `<!doctype html><meta charset="utf-8"><title>sdk</title>
<script src="/parley.js"></script>
<script>
  window.inbox = []
  window.delivered = []
  // ?store=<name>&key=<64 hex>: another IndexedDB database, sealed under that key (storeEncryptionKey).
  const query = new URLSearchParams(location.search)
  const key = query.get('key')
  window.ready = Parley.createClient({
    relayUrl: ${JSON.stringify(relayWs)},
    storeName: query.get('store') ?? 'parley',
    defaultRegion: 'US',
    reconnect: { minDelayMs: 50, maxDelayMs: 500 },
    ...(key ? { storeEncryptionKey: Uint8Array.from(key.match(/../g), (h) => parseInt(h, 16)) } : {}),
  }).then((client) => {
    window.client = client
    client.on('message', (m) => window.inbox.push({ id: m.id, from: m.from, text: m.text }))
    client.on('delivered', (d) => window.delivered.push(d.id))
  })
</script>`
}

describe.skipIf(!haveChromium && !required)(
  '@parley/browser in headless Chromium against a real relay',
  () => {
    const codes = new CodeInbox()
    const nodeDir = clientDir()
    let relay: Relay
    let browser: Browser
    let sdk: string
    let pageServer: Server
    let pageUrl: string
    const contexts: BrowserContext[] = []
    let alice: Page
    let bob: Page
    let carol: ParleyClient | undefined

    async function openPage(): Promise<Page> {
      const context = await browser.newContext()
      contexts.push(context)
      const page = await context.newPage()
      page.on('pageerror', (err) => console.log(`page error: ${err.message}`))
      await load(page)
      return page
    }

    async function load(page: Page, reload = false): Promise<void> {
      if (reload) await page.reload()
      else await page.goto(pageUrl)
      await page.evaluate(() => (window as unknown as TestWindow).ready)
    }

    async function activate(page: Page, number: string): Promise<void> {
      const pending = await page.evaluate(
        (phoneNumber) => (window as unknown as TestWindow).client.activate({ phoneNumber, consent: true }),
        number,
      )
      const code = await codes.next(pending.e164)
      await page.evaluate((c) => (window as unknown as TestWindow).client.confirm(c), code)
    }

    const inbox = (page: Page) => page.evaluate(() => (window as unknown as TestWindow).inbox)
    const send = (page: Page, to: string, text: string) =>
      page.evaluate(([t, x]) => (window as unknown as TestWindow).client.send(t!, x!), [to, text])
    const pending = (page: Page) =>
      page.evaluate(() => (window as unknown as TestWindow).client.pendingCount())
    const waitFor = async (page: Page, text: string, what: string) =>
      until(async () => (await inbox(page)).some((m) => m.text === text), 20_000, what)

    beforeAll(async () => {
      if (!haveChromium) throw new Error(`${CHROMIUM} is missing and PARLEY_REQUIRE_SERVICES is set`)
      ;[sdk] = await Promise.all([bundleSdk(), codes.start()])
      // The harness's relay runs in production mode, where the demo page is off by default.
      relay = await startRelay(codes, ['--demo', 'true'])
      pageServer = createServer((req, res) => {
        if (req.url === '/parley.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(sdk)
        else if (req.url === '/' || req.url?.startsWith('/?'))
          res.writeHead(200, { 'content-type': 'text/html' }).end(testPage(relay.baseUrl))
        else res.writeHead(404).end()
      })
      await new Promise<void>((r) => pageServer.listen(0, '127.0.0.1', r))
      pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        // Playwright gives each launch a fresh temporary profile (it refuses --user-data-dir with launch()).
        args: CHROMIUM_ARGS,
      })
      ;[alice, bob] = await Promise.all([openPage(), openPage()])
    })

    afterAll(async () => {
      await carol?.close()
      for (const context of contexts) await context.close().catch(() => {})
      await browser?.close()
      pageServer?.close()
      await relay?.close()
      await codes.close()
      rmSync(nodeDir, { recursive: true, force: true })
    })

    it('two browser contexts activate, discover each other and exchange messages', async () => {
      await Promise.all([activate(alice, ALICE), activate(bob, BOB)])
      const found = await alice.evaluate(
        (numbers) => (window as unknown as TestWindow).client.discover(numbers),
        [BOB, '+1 415 555 0149'],
      )
      expect(found.map((r) => r.registered)).toEqual([true, false])

      const sent = await send(alice, BOB, 'hello from tab A')
      expect(sent.route).toBe('ip')
      await waitFor(bob, 'hello from tab A', 'bob to receive')
      expect((await inbox(bob))[0]).toEqual({ id: sent.id, from: e164(ALICE), text: 'hello from tab A' })
      await send(bob, ALICE, 'hi A, this is B')
      await waitFor(alice, 'hi A, this is B', 'alice to receive')

      const safety = (page: Page, peer: string) =>
        page.evaluate((p) => (window as unknown as TestWindow).client.safetyNumber(p), peer)
      const [a, b] = await Promise.all([safety(alice, BOB), safety(bob, ALICE)])
      expect(a).not.toBeNull()
      expect(a).toBe(b)
    })

    it('a reload keeps the history and the outbox: a message queued while the relay is down is delivered after', async () => {
      await load(bob, true)
      const history = await bob.evaluate(async () =>
        (await (window as unknown as TestWindow).client.history()).map((m) => m.text),
      )
      expect(history).toEqual(['hello from tab A'])
      expect(await bob.evaluate(() => (window as unknown as TestWindow).client.activated)).toBe(true)

      await relay.stop() // it keeps its data directory and port for start()
      const queued = await send(alice, BOB, 'sent while the relay was down')
      expect(queued.route).toBe('ip')
      expect(await pending(alice)).toBe(1)
      await load(alice, true) // the page is served by the test, so it reloads with the relay down
      expect(await pending(alice)).toBe(1)

      await relay.start()
      await waitFor(bob, 'sent while the relay was down', 'the queued message after the restart')
      await until(async () => (await pending(alice)) === 0, 10_000, 'the outbox to drain')
      expect((await inbox(bob)).filter((m) => m.id === queued.id)).toHaveLength(1)
    })

    it('a second tab of the same store is refused with INVALID_STATE until the first closes its client', async () => {
      const context = await browser.newContext()
      contexts.push(context)
      const first = await context.newPage()
      await load(first)
      const second = await context.newPage()
      await second.goto(pageUrl)
      const outcome = (page: Page) =>
        page.evaluate(() =>
          (window as unknown as TestWindow).ready.then(
            () => 'opened',
            (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
          ),
        )
      expect(await outcome(second)).toMatch(/^INVALID_STATE: the Parley store parley is open in another tab/)
      // The first tab's client still works: the second never touched the store.
      expect(await pending(first)).toBe(0)
      await first.evaluate(() => (window as unknown as TestWindow).client.close())
      await second.reload()
      expect(await outcome(second)).toBe('opened')
      expect(await pending(second)).toBe(0)
      // A reload of the tab holding it opens again (its old document let go).
      await second.reload()
      expect(await outcome(second)).toBe('opened')
    })

    it('a browser client and a Node client talk both ways', async () => {
      const received: IncomingMessage[] = []
      carol = await activatedClient(relay, codes, CAROL, { storePath: join(nodeDir, 'carol.db') })
      carol.on('message', (m) => received.push(m))
      const found = await alice.evaluate((n) => (window as unknown as TestWindow).client.discover([n]), CAROL)
      expect(found[0]!.registered).toBe(true)

      await send(alice, CAROL, 'browser → node')
      await until(() => received.length === 1, 20_000, 'the Node client to receive')
      expect(received[0]).toMatchObject({ from: e164(ALICE), text: 'browser → node' })

      await carol.send(ALICE, 'node → browser')
      await waitFor(alice, 'node → browser', 'the browser to receive from Node')
      expect((await inbox(alice)).find((m) => m.text === 'node → browser')!.from).toBe(e164(CAROL))
      expect(await carol.safetyNumber(ALICE)).toBe(
        await alice.evaluate((n) => (window as unknown as TestWindow).client.safetyNumber(n), CAROL),
      )
    })

    it('a browser streams an attachment to a Node client (its chunks collected in a Blob) and downloads one as a stream', async () => {
      // Both files are a byte pattern, so each side checks every byte without the other's copy.
      const pattern = (at: number, salt: number) => (at * 31 + salt) & 255
      const SIZE = 3 * 1024 * 1024 + 17
      const received: IncomingMessage[] = []
      carol!.on('message', (m) => received.push(m))
      const id = await alice.evaluate(
        async ([to, size]) => {
          let made = 0
          const stream = new ReadableStream<Uint8Array>({
            pull(controller) {
              if (made >= size) return controller.close()
              const piece = new Uint8Array(Math.min(65_536, size - made))
              for (let i = 0; i < piece.length; i++) piece[i] = ((made + i) * 31 + 7) & 255
              made += piece.length
              controller.enqueue(piece)
            },
          })
          const w = window as unknown as TestWindow
          return (await w.client.sendAttachment(to, { stream, size, fileName: 'pattern.bin' })).id
        },
        [CAROL, SIZE] as const,
      )
      await until(() => received.some((m) => m.id === id), 30_000, 'the Node client to get the attachment')
      const file = await carol!.downloadAttachment(id)
      expect(file.length).toBe(SIZE)
      expect(file.every((b, i) => b === pattern(i, 7))).toBe(true)

      const back = new Uint8Array(2 * 1024 * 1024 + 5).map((_, i) => pattern(i, 11))
      const sent = await carol!.sendAttachment(ALICE, { data: back, fileName: 'back.bin' })
      await until(
        async () => (await inbox(alice)).some((m) => m.id === sent.id),
        30_000,
        'the browser to get it',
      )
      const got = await alice.evaluate(async (messageId) => {
        const w = window as unknown as TestWindow
        const stream = await w.client.downloadAttachmentStream(messageId)
        const reader = stream.getReader()
        let bytes = 0
        let pieces = 0
        let wrong = 0
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          for (let i = 0; i < value.length; i++) if (value[i] !== (((bytes + i) * 31 + 11) & 255)) wrong++
          bytes += value.length
          pieces++
        }
        return { bytes, pieces, wrong }
      }, sent.id)
      expect(got).toMatchObject({ bytes: back.length, wrong: 0 })
      // Released piece by piece, not as one buffer at the end.
      expect(got.pieces).toBeGreaterThan(1)
    })

    it('the demo page served by the relay: two panes activate, chat, type, send an image, show read receipts and the safety number, and form a group with an SMS member', async () => {
      const context = await browser.newContext({
        viewport: { width: 1280, height: 860 },
        deviceScaleFactor: 1,
      })
      contexts.push(context)
      const page = await context.newPage()
      const errors: string[] = []
      page.on('pageerror', (err) => errors.push(err.message))
      await page.goto(`${relay.httpUrl}/`)
      await page.waitForSelector('body[data-ready="true"]')
      const pane = (id: 'a' | 'b') => page.locator(`[data-pane="${id}"]`)
      const numbers = { a: '+1 415 555 0150', b: '+1 415 555 0151' }

      for (const id of ['a', 'b'] as const) {
        await pane(id).getByTestId('number').fill(numbers[id])
        await pane(id).getByTestId('activate').click()
        await pane(id).getByTestId('code').waitFor()
        await pane(id)
          .getByTestId('code')
          .fill(await codes.next(e164(numbers[id])))
        await pane(id).getByTestId('confirm').click()
        await pane(id).getByTestId('compose-form').waitFor()
      }
      await pane('a').getByTestId('peer').fill(numbers.b)
      await pane('a').getByTestId('discover').click()
      await expect.poll(() => pane('a').getByTestId('found').textContent()).toContain('is on Parley')
      await pane('b').getByTestId('peer').fill(numbers.a)

      const say = async (id: 'a' | 'b', text: string) => {
        await pane(id).getByTestId('text').fill(text)
        await pane(id).getByTestId('send').click()
        const other = id === 'a' ? 'b' : 'a'
        await pane(other).locator('.msg.in', { hasText: text }).waitFor({ timeout: 20_000 })
      }
      await say('a', 'Hi! Is this really end-to-end encrypted?')
      await say('b', 'Yes — the relay only ever sees ciphertext.')
      await say('a', 'Great. Compare safety numbers?')
      await say('b', 'Matches mine. Talk soon!')

      // Each pane shows what it got, so marks it read: every sent message ends as read (✓✓ by the read receipt).
      for (const id of ['a', 'b'] as const) {
        await expect
          .poll(() => pane(id).locator('.msg.out:not([data-state="read"])').count(), { timeout: 20_000 })
          .toBe(0)
        expect(await pane(id).locator('.msg.out').count()).toBe(2)
        await expect.poll(() => pane(id).getByTestId('safety').textContent()).toMatch(/^(\d{5} ){11}\d{5}$/)
      }

      // Typing in one pane shows in the other, and goes away when the message arrives.
      await pane('b').getByTestId('text').fill('An image, then')
      await expect
        .poll(() => pane('a').getByTestId('typing').textContent(), { timeout: 20_000 })
        .toContain('is typing')
      mkdirSync(join(SCREENSHOT, '..'), { recursive: true })
      await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-typing.png'), fullPage: true })
      await pane('b').getByTestId('send').click()
      await pane('a').locator('.msg.in', { hasText: 'An image, then' }).waitFor({ timeout: 20_000 })
      expect(await pane('a').getByTestId('typing').textContent()).toBe('')

      // An image picked in pane A: encrypted there, its blob through the relay, decrypted and shown in pane B.
      const picture = await page.screenshot({ clip: { x: 0, y: 0, width: 160, height: 96 } })
      await pane('a')
        .getByTestId('file')
        .setInputFiles({ name: 'parley.png', mimeType: 'image/png', buffer: picture })
      const shown = pane('b').locator('.msg.in img[data-testid="image"]')
      await shown.waitFor({ timeout: 30_000 })
      await expect
        .poll(() => shown.evaluate((img) => (img as HTMLImageElement).naturalWidth), { timeout: 10_000 })
        .toBe(160)
      expect(await pane('a').locator('.msg.out img[data-testid="image"]').count()).toBe(1)
      await expect
        .poll(() => pane('a').locator('.msg.out:not([data-state="read"])').count(), { timeout: 20_000 })
        .toBe(0)
      expect(await pane('a').getByTestId('safety').textContent()).toBe(
        await pane('b').getByTestId('safety').textContent(),
      )
      expect(await pane('a').getByTestId('state').textContent()).toBe('online')

      // A group of the two devices and a number not on Parley: created in pane A, shown in B, a message each
      // way over IP, and the SMS member's copy handed to pane A's SMS hook (shown in its log, never uploaded).
      await pane('a').getByTestId('group-members').fill(`${numbers.b}, +1 415 555 0199`)
      await pane('a').getByTestId('group-create').click()
      await expect
        .poll(() => pane('b').getByTestId('group-info').textContent(), { timeout: 20_000 })
        .toContain('Device A')
      expect(await pane('b').getByTestId('group-info').textContent()).toContain('+14155550199 · SMS')
      await pane('a').getByTestId('group-text').fill('Hello, group')
      await pane('a').getByTestId('group-send').click()
      await pane('b')
        .getByTestId('group-messages')
        .locator('.msg.in', { hasText: 'Hello, group' })
        .waitFor({ timeout: 20_000 })
      await expect
        .poll(() => pane('a').getByTestId('sms-log').textContent())
        .toContain("SMS to +14155550199 (Device A's group): Hello, group")
      await pane('b').getByTestId('group-text').fill('Hi all')
      await pane('b').getByTestId('group-send').click()
      await pane('a')
        .getByTestId('group-messages')
        .locator('.msg.in', { hasText: 'Hi all' })
        .waitFor({ timeout: 20_000 })
      await expect.poll(() => pane('b').getByTestId('sms-log').textContent()).toContain('Hi all')
      expect(errors).toEqual([])

      mkdirSync(join(SCREENSHOT, '..'), { recursive: true })
      await page.screenshot({ path: SCREENSHOT, fullPage: true })
      expect(existsSync(SCREENSHOT)).toBe(true)
    })

    it('a store sealed under storeEncryptionKey leaves no text or number in the profile’s IndexedDB files', async () => {
      const key = 'a7'.repeat(32)
      const people = { sealed: '+1 415 555 0146', plain: '+1 415 555 0147' }
      const texts = { sealed: 'sealed-in-chromium-5d1e', plain: 'plain-in-chromium-c08b' }
      // Persistent profiles (a fresh --user-data-dir each), so that IndexedDB is written to disk.
      const profiles = { sealed: clientDir(), plain: clientDir() }
      const open = async (who: 'sealed' | 'plain', withKey: boolean) => {
        const context = await chromium.launchPersistentContext(profiles[who], {
          executablePath: CHROMIUM,
          args: CHROMIUM_ARGS,
        })
        const page = context.pages()[0] ?? (await context.newPage())
        await page.goto(`${pageUrl}?store=${who}${withKey ? `&key=${key}` : ''}`)
        return { context, page }
      }
      const sealed = await open('sealed', true)
      const plain = await open('plain', false)
      try {
        for (const [who, side] of [
          ['sealed', sealed],
          ['plain', plain],
        ] as const) {
          await side.page.evaluate(() => (window as unknown as TestWindow).ready)
          await activate(side.page, people[who])
        }
        await send(sealed.page, people.plain, texts.sealed)
        await waitFor(plain.page, texts.sealed, 'the plain profile to receive')
        await send(plain.page, people.sealed, texts.plain)
        await waitFor(sealed.page, texts.plain, 'the sealed profile to receive')
        for (const side of [sealed, plain]) {
          await side.page.evaluate(() => (window as unknown as TestWindow).client.close())
        }
      } finally {
        await Promise.all([sealed.context.close(), plain.context.close()])
      }
      // Every file of each profile, in UTF-8 and in the UTF-16 that IndexedDB keys are written in.
      const files = (dir: string): Buffer[] =>
        readdirSync(dir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => readFileSync(join(e.parentPath, e.name)))
      const found = (dir: string, needles: string[]) => {
        const all = files(dir)
        return needles.filter((n) =>
          all.some((f) => f.includes(Buffer.from(n)) || f.includes(Buffer.from(n, 'utf16le'))),
        )
      }
      const needles = [texts.sealed, texts.plain, '4155550146', '4155550147']
      // Found where the store is not sealed, so finding none in the sealed profile means something.
      expect(found(profiles.plain, needles)).toEqual(needles)
      expect(found(profiles.sealed, needles)).toEqual([])
      // And the sealed store does not open without its key.
      const again = await open('sealed', false)
      try {
        const outcome = await again.page.evaluate(() =>
          (window as unknown as TestWindow).ready.then(
            () => 'opened',
            (e: { code?: string }) => e.code ?? String(e),
          ),
        )
        expect(outcome).toBe('INVALID_STATE')
      } finally {
        await again.context.close()
      }
    })

    it('a registration lock set in the browser (its scrypt on WebCrypto) is proved by a Node device with the PIN', async () => {
      const started = Date.now()
      await bob.evaluate(() => (window as unknown as TestWindow).client.setRegistrationLock('2580'))
      // The browser's proof of the PIN is the verifier the relay now holds; Node's must match it byte for byte.
      const tookMs = Date.now() - started
      const phone = await nodeClient(relay, { storePath: join(nodeDir, 'bob-new-phone.db') })
      const pendingActivation = await phone.activate({ phoneNumber: BOB, consent: true })
      const code = await codes.next(pendingActivation.e164)
      const refused = await phone.confirm(code).catch((e: unknown) => e as { code: string })
      expect((refused as { code: string }).code).toBe('REGISTRATION_LOCKED')
      const wrong = await phone.confirm(code, { pin: '0852' }).catch((e: unknown) => e as { code: string })
      expect((wrong as { code: string }).code).toBe('REGISTRATION_LOCKED')
      await phone.confirm(code, { pin: '2580' })
      expect(phone.activated).toBe(true)
      console.log(`setRegistrationLock in Chromium took ${tookMs} ms (scrypt N = 2^15)`)
      await phone.close()
    })

    it("a browser links as a device of a Node account: both get a contact's mail, each shows what the other sent", async () => {
      const DAVE = '+1 415 555 0143'
      const phone = await activatedClient(relay, codes, DAVE, { storePath: join(nodeDir, 'dave-phone.db') })
      const phoneGot: IncomingMessage[] = []
      const carolGot: IncomingMessage[] = []
      phone.on('message', (m) => phoneGot.push(m))
      const contact =
        carol ?? (await activatedClient(relay, codes, CAROL, { storePath: join(nodeDir, 'carol2.db') }))
      contact.on('message', (m) => carolGot.push(m))
      try {
        const tab = await openPage()
        const invitation = await phone.createLinkCode()
        const linked = await tab.evaluate(
          (code) => (window as unknown as TestWindow).client.link(code),
          invitation.code,
        )
        expect((await invitation.linked).deviceId).toBe(linked.deviceId)
        expect(linked.number).toBe(e164(DAVE))
        const devices = await tab.evaluate(() => (window as unknown as TestWindow).client.devices())
        expect(devices.map((d) => d.current)).toEqual([false, true])

        const sent = await contact.send(DAVE, 'to every device of dave')
        await waitFor(tab, 'to every device of dave', 'the browser device to receive')
        await until(() => phoneGot.some((m) => m.id === sent.id), 20_000, 'the phone to receive')
        expect((await inbox(tab)).filter((m) => m.id === sent.id)).toEqual([
          { id: sent.id, from: e164(CAROL), text: 'to every device of dave' },
        ])

        const fromTab = await send(tab, CAROL, 'from dave in the browser')
        await until(
          () => carolGot.some((m) => m.id === fromTab.id),
          20_000,
          'carol to receive from the browser',
        )
        expect(carolGot.find((m) => m.id === fromTab.id)!.from).toBe(e164(DAVE))
        await until(() => phoneGot.some((m) => m.id === fromTab.id), 20_000, 'the transcript on the phone')
        expect(phoneGot.find((m) => m.id === fromTab.id)).toMatchObject({ to: e164(CAROL) })

        const fromPhone = await phone.send(CAROL, 'from dave on the phone')
        await waitFor(tab, 'from dave on the phone', 'the transcript in the browser')
        await until(
          () => carolGot.some((m) => m.id === fromPhone.id),
          20_000,
          'carol to receive from the phone',
        )
      } finally {
        await phone.close()
        if (contact !== carol) await contact.close()
      }
    })
  },
)
