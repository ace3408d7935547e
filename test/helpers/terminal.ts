import { execFile } from 'node:child_process';
import { Terminal } from '@xterm/headless';

/**
 * Runs a shell command under a pseudo-terminal (util-linux `script`) of `cols` × `rows`, as an operator's shell
 * would, and returns every byte it wrote there (stdout and stderr share the terminal, as they do for a person).
 */
export function runOnTerminal(command: string, opts: { cwd: string; env: NodeJS.ProcessEnv; cols?: number; rows?: number }): Promise<{ code: number; output: string }> {
  const sized = `stty cols ${opts.cols ?? 100} rows ${opts.rows ?? 30}; ${command}`;
  return new Promise((resolvePromise, reject) => {
    execFile('script', ['-qefc', sized, '/dev/null'], { cwd: opts.cwd, env: opts.env, maxBuffer: 64 << 20 }, (err, stdout) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && typeof err.code !== 'number') reject(err);
      else resolvePromise({ code, output: stdout });
    });
  });
}

/**
 * What a person sees once `output` has been written to a terminal of `cols` × `rows`: every line of the screen
 * and of its scrollback (rows the terminal wrapped joined again), trailing blanks trimmed, empty lines at the end
 * dropped. A headless xterm interprets
 * the escape sequences (cursor moves, saved positions, cleared lines) exactly as a terminal would.
 */
export async function screenAfter(output: string, cols = 100, rows = 30): Promise<string[]> {
  const term = new Terminal({ cols, rows, scrollback: 10_000, allowProposedApi: true });
  // script turns the child's \n into \r\n (the pty's onlcr), as a terminal receives it.
  await new Promise<void>((resolvePromise) => term.write(output, resolvePromise));
  const buffer = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) {
    const line = buffer.getLine(i);
    const text = line?.translateToString(true) ?? '';
    // A row the terminal wrapped onto continues the line above: join them back into the line that was written.
    if (line?.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
    else lines.push(text);
  }
  term.dispose();
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
