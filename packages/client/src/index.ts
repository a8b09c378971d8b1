// @parley/client — the public API is exactly what this file exports.
export {}
