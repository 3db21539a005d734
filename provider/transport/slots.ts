/** sshd's default MaxSessions is 10; stay under it so a busy stack never sees "open failed". */
export const MAX_CHANNELS_PER_CONNECTION = 8;

/** At most `max` session channels of one connection in use at once; the rest wait in order. */
export class ChannelSlots {
  private active = 0;
  private waiting: (() => void)[] = [];

  constructor(private readonly max = MAX_CHANNELS_PER_CONNECTION) {}

  async acquire(): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}
