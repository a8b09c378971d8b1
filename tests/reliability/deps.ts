// The reliability suite's third-party modules, in one place.
import Database from 'better-sqlite3'
import WebSocket from 'ws'

export { Database, WebSocket }
