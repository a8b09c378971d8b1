// Source networks for IP-based limits: one address of a network costs an attacker nothing more than another, so
// limits that are "per IP" count per IPv4 /24 and per IPv6 /56 instead.
import { isIPv4, isIPv6 } from 'node:net'

/** Default bits of an IPv4 address that name its network for limits (`--ipv4-network-bits`). */
export const IPV4_NETWORK_BITS = 24
/** Default bits of an IPv6 address that name its network for limits, a typical end-site allocation. */
export const IPV6_NETWORK_BITS = 56

function expandIPv6(ip: string): number[] | null {
  const [head, tail, ...rest] = ip.split('::')
  if (rest.length > 0) return null
  const parse = (part: string | undefined) => (part ? part.split(':') : [])
  let left = parse(head)
  let right = parse(tail)
  // An embedded IPv4 tail (e.g. ::ffff:1.2.3.4) counts as two groups.
  const last = (right.length > 0 ? right : left).at(-1)
  if (last?.includes('.')) {
    const octets = last.split('.').map(Number)
    const groups = [
      ((octets[0]! << 8) | octets[1]!).toString(16),
      ((octets[2]! << 8) | octets[3]!).toString(16),
    ]
    if (right.length > 0) right = [...right.slice(0, -1), ...groups]
    else left = [...left.slice(0, -1), ...groups]
  }
  const fill = tail === undefined ? 0 : 8 - left.length - right.length
  if (fill < 0) return null
  const groups = [...left, ...Array(fill).fill('0'), ...right].map((g) => Number.parseInt(g, 16))
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : null
}

/**
 * The network an address belongs to, as a stable key: `"4:a.b.c.0/24"` or `"6:<hex of the first 56 bits>/56"`.
 * IPv4-mapped IPv6 addresses count as their IPv4 address. Anything unparseable is its own key.
 * @param ip - the source address
 * @param bits - network sizes (defaults /24 and /56)
 * @example networkOf('203.0.113.77') // '4:203.0.113.0/24'
 */
export function networkOf(ip: string, bits: { v4?: number; v6?: number } = {}): string {
  const v4Bits = bits.v4 ?? IPV4_NETWORK_BITS
  const v6Bits = bits.v6 ?? IPV6_NETWORK_BITS
  let v4 = ip
  if (ip.toLowerCase().startsWith('::ffff:') && isIPv4(ip.slice(7))) v4 = ip.slice(7)
  if (isIPv4(v4)) {
    const n = v4.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)
    const masked = v4Bits === 0 ? 0 : Math.floor(n / 2 ** (32 - v4Bits)) * 2 ** (32 - v4Bits)
    const dotted = [24, 16, 8, 0].map((shift) => Math.floor(masked / 2 ** shift) % 256).join('.')
    return `4:${dotted}/${v4Bits}`
  }
  if (isIPv6(ip)) {
    const groups = expandIPv6(ip.split('%')[0]!)
    if (groups) {
      const bin = groups.map((g) => g.toString(2).padStart(16, '0')).join('')
      const kept = bin.slice(0, v6Bits).padEnd(Math.ceil(v6Bits / 4) * 4, '0')
      const hex =
        kept
          .match(/.{4}/g)
          ?.map((b) => Number.parseInt(b, 2).toString(16))
          .join('') ?? ''
      return `6:${hex}/${v6Bits}`
    }
  }
  return `?:${ip}`
}
