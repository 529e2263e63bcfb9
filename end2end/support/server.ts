import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The repository root. */
export const ROOT = path.resolve(__dirname, '..', '..');

/** Settings every test server gets: short intervals so expiry shows in seconds. */
export const TEST_ENV: Record<string, string> = {
  PRESENCE_INTERVAL_MS: '1000',
  PRESENCE_HIDDEN_INTERVAL_MS: '60000',
  PRESENCE_SUBSCRIPTION_GRACE_MS: '1000',
};

/** The demo server binary built by `cargo leptos build`, run on a loopback port. */
export class DemoServer {
  private proc?: ChildProcess;

  constructor(
    readonly port: number,
    readonly env: Record<string, string> = {},
    /** Another app's binary (its `LEPTOS_*` settings go in `env`); default: the demo's. */
    readonly bin?: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const bin = this.bin ?? process.env.DEMO_BIN ?? path.join(ROOT, 'target', 'debug', 'presence-demo');
    if (!fs.existsSync(bin)) {
      throw new Error(`${bin} is missing: run \`cargo leptos build\` first`);
    }
    const logDir = path.join(__dirname, '..', 'test-results');
    fs.mkdirSync(logDir, { recursive: true });
    const log = fs.openSync(path.join(logDir, `server-${this.port}.log`), 'a');
    this.proc = spawn(bin, [], {
      cwd: ROOT,
      env: {
        ...process.env,
        LEPTOS_OUTPUT_NAME: 'presence-demo',
        LEPTOS_SITE_ROOT: 'target/site',
        LEPTOS_SITE_PKG_DIR: 'pkg',
        LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
        LEPTOS_RELOAD_PORT: String(this.port + 1),
        ...TEST_ENV,
        ...this.env,
      },
      stdio: ['ignore', log, log],
    });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) {
        throw new Error(`demo server exited with ${this.proc.exitCode}; see test-results/server-${this.port}.log`);
      }
      try {
        const res = await fetch(this.url + '/');
        if (res.status < 500) return; // up (an app without a / route answers 404)
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`demo server did not answer on ${this.url} within 30 s`);
  }

  /** Kills the server at once, as a crash would. */
  async kill(): Promise<void> {
    await killHard(this.proc);
  }
}

/** SIGKILLs a child process (if it still runs) and waits until it has exited. */
export async function killHard(proc?: ChildProcess): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await exited;
}
