// Reads deploy/ (the Dockerfile, docker-compose.yml, the systemd unit) for the tests that check them.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'

/** The repository's deploy/ directory. */
export const DEPLOY_DIR = fileURLToPath(new URL('../../../deploy/', import.meta.url))
export const deployFile = (name: string) => readFileSync(`${DEPLOY_DIR}${name}`, 'utf8')

/** One instruction of a Dockerfile, continuation lines joined. */
export interface DockerInstruction {
  op: string
  args: string
}

/** The Dockerfile's build stages, each a list of instructions (comments dropped). */
export function dockerStages(text: string): DockerInstruction[][] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
  const stages: DockerInstruction[][] = []
  for (const line of lines) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line)
    if (!m) throw new Error(`not a Dockerfile instruction: ${line}`)
    if (m[1] === 'FROM') stages.push([])
    stages.at(-1)?.push({ op: m[1]!, args: m[2]!.trim() })
  }
  return stages
}

/** The exec-form (JSON array) arguments of an instruction such as CMD or ENTRYPOINT. */
export const execForm = (i: DockerInstruction | undefined): string[] =>
  JSON.parse(i?.args ?? 'null') as string[]

/** The parsed docker-compose.yml. */
export interface Compose {
  services: Record<string, Record<string, unknown> & { command?: string[]; volumes?: string[] }>
  volumes: Record<string, unknown>
  secrets: Record<string, { file: string }>
}
export const compose = (): Compose => parseYaml(deployFile('docker-compose.yml')) as Compose

/** `key=value` lines of a systemd unit's sections, in order (a key may repeat). */
export function unitEntries(text: string): [key: string, value: string][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('['))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string])
}

/**
 * The start command the deploy files share: the final Docker stage's ENTRYPOINT + CMD (e.g.
 * `parley-relay --config /etc/parley-relay/parley.toml`).
 */
export function startCommand(): string[] {
  const final = dockerStages(deployFile('Dockerfile')).at(-1)!
  return [
    ...execForm(final.find((i) => i.op === 'ENTRYPOINT')),
    ...execForm(final.find((i) => i.op === 'CMD')),
  ]
}
