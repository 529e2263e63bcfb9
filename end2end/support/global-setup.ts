import { DemoServer } from './server';

/** Starts the shared demo server (port 3400, or DEMO_PORT) unless DEMO_URL points elsewhere. */
export default async function globalSetup(): Promise<() => Promise<void>> {
  if (process.env.DEMO_URL) return async () => {};
  const server = new DemoServer(Number(process.env.DEMO_PORT ?? 3400));
  await server.start();
  return async () => server.kill();
}
