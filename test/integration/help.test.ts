import { expect } from 'chai';
import type { CommandModule } from 'yargs';
import { explainCommand, inspectCommand, reprocessCommand, runCommand, statusCommand } from '../../src/commands/index.js';
import { CLI, cleanEnv, runCli, tempDir } from '../helpers/cli.js';
import { runOnTerminal } from '../helpers/terminal.js';

const COMMANDS = { run: runCommand, status: statusCommand, inspect: inspectCommand, reprocess: reprocessCommand, explain: explainCommand } as Record<string, CommandModule<object, object>>;

/** Every text a command's help shows, read from its yargs definition: its description and its options'. */
function descriptions(command: CommandModule<object, object>): string[] {
  const out = [String(command.describe)];
  const recorder = {
    option(_name: string, o: { describe?: string }) {
      if (o.describe) out.push(o.describe);
      return recorder;
    },
    positional(_name: string, o: { describe?: string }) {
      return recorder.option(_name, o);
    },
    check() {
      return recorder;
    },
  };
  (command.builder as (y: unknown) => unknown)(recorder);
  return out;
}

/** The help's words in one line, without the type tags yargs sets in a column of their own. */
const flatten = (help: string): string => help.replace(/\[(?:boolean|string|number|array|default|required|choices:[^\]]*)\]/g, ' ').replace(/\s+/g, ' ');
const flat = (text: string): string => text.replace(/\s+/g, ' ');

describe('--help (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  for (const [name, command] of Object.entries(COMMANDS)) {
    it(`${name} --help wraps between words at 80 columns when not on a terminal (regression: "el se", "re cord", "HTTP_P ORT")`, async () => {
      const r = await runCli([name, '--help'], { cwd: dir });
      expect(r.code, r.stderr).to.equal(0);
      for (const line of r.stdout.split('\n')) expect(line.length, line).to.be.at.most(80);
      const texts = descriptions(command);
      expect(texts.length).to.be.above(3); // the command's and the shared options' at least
      for (const text of texts) expect(flatten(r.stdout), r.stdout).to.contain(flat(text));
    });
  }

  it('the top-level --help lists every command with its whole description', async () => {
    const r = await runCli(['--help'], { cwd: dir });
    for (const command of Object.values(COMMANDS)) expect(flatten(r.stdout), r.stdout).to.contain(flat(String(command.describe)));
  });

  for (const cols of [132, 60]) {
    it(`wraps at the terminal's width, between words (${cols} columns)`, async () => {
      const r = await runOnTerminal(`${process.execPath} ${CLI} run --help`, { cwd: dir, env: cleanEnv({}), cols });
      const lines = r.output.split(/\r?\n/);
      for (const line of lines) expect(line.length, line).to.be.at.most(cols);
      expect(Math.max(...lines.map((l) => l.length))).to.be.above(cols - 15); // the width is used, not 80
      for (const text of descriptions(runCommand)) expect(flatten(r.output), r.output).to.contain(flat(text));
    });
  }
});
