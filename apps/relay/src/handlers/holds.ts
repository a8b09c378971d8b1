/**
 * The operator's holds (`parley-relay admin ban|revoke`) at the two doors of an account: authentication and
 * activation. Checked only after the caller proved itself (the auth signature; the activation code), so that
 * nobody learns whether another's address is banned.
 * @module
 */
import { ParleyError } from '@parley/protocol'
import type { OperatorHold } from '../Store.js'

/**
 * The refusal for a held address or device, or `undefined` when nothing is held.
 * @param hold - what the store holds against it ({@link Store.operatorHold})
 * @returns `FORBIDDEN` for a banned address; `UNAUTHENTICATED` for a revoked device (its credentials no longer
 *   open the account: the number must be activated again)
 */
export function heldError(hold: OperatorHold): ParleyError | undefined {
  if (hold === 'banned') return new ParleyError('FORBIDDEN', 'this account is banned by the relay operator')
  if (hold === 'revoked') {
    return new ParleyError(
      'UNAUTHENTICATED',
      'this device was revoked by the relay operator; activate the number again',
    )
  }
  return undefined
}

/**
 * Refuses a held address or device.
 * @param hold - what the store holds against it ({@link Store.operatorHold})
 * @throws ParleyError {@link heldError}'s refusal
 */
export function refuseHeld(hold: OperatorHold): void {
  const err = heldError(hold)
  if (err) throw err
}
