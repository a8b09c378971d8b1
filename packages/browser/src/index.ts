// @parley/browser — the public API is exactly what this file exports.
export {}
