/** One subcommand of the `andromeda` CLI. `run` gets the arguments after the subcommand's name. */
export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Full `--help` text. */
  readonly usage: string;
  run(args: string[]): Promise<void>;
}

/** An error whose message is meant for the user as is (no stack trace is printed). */
export class UsageError extends Error {
  override name = 'UsageError';
}
