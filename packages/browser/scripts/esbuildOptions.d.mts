import type { BuildOptions } from 'esbuild'

/** See esbuildOptions.mjs: the esbuild options of every browser bundle of the SDK. */
export declare const browserOptions: Readonly<BuildOptions>
