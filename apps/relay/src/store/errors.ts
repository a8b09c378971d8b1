// The errors both SQL stores (SqliteStore, PostgresStore) raise alike.

/** The error of a call on a store after `Store.close` (and of a write queued when it closed). */
export function storeClosed(): Error {
  return new Error('store is closed')
}
