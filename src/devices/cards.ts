// Chips, not cards: tt-metal's device ids count chips. One /dev/tenstorrent entry is one card; an
// n300 card is two tt-metal devices (its local chip and a remote one behind it over Ethernet).
// The counts below are what SHM-LAYOUT.md §3 says; where it says nothing (galaxy, p300, the
// Grayskull cards) the count is null and said so, never guessed.
import { cardKey } from './arch.js';

export interface CardChips {
  /** tt-metal devices on the card, local and remote; null when no source says. */
  chips: number | null;
  /** How many of them are remote (reached through the local chip). */
  remote: number;
  /** Why, in words ("n300: 1 local + 1 remote chip"). */
  note: string;
}

const ONE = (card: string): CardChips => ({ chips: 1, remote: 0, note: `${card}: 1 chip` });
const NOT_SAID =
  "how many tt-metal devices it is is not in ttalloc's sources: declare its chips " +
  '(--devices NxARCH) or they appear as they report, capacity unknown';

/**
 * Chips per card type, by CARD_TYPES key. Source: SHM-LAYOUT.md §3 ("An n150 card is one chip.
 * An n300 card is … two tt-metal devices", "A T3K is four n300 cards: eight devices", "p100/p150
 * are one chip each"; the SHM header's own comment "For N300: 1 local + 1 remote = 2").
 */
const KNOWN: Record<string, CardChips> = {
  n150: ONE('n150'),
  n300: { chips: 2, remote: 1, note: 'n300: 1 local + 1 remote chip' },
  p100: ONE('p100'),
  p100a: ONE('p100a'),
  p150: ONE('p150'),
  p150a: ONE('p150a'),
  p150b: ONE('p150b'),
  p150c: ONE('p150c'),
};

/** What the sources say about the chips of a card type (null or '': the driver did not say). */
export function chipsOfCard(cardType: string | null | undefined): CardChips {
  if (!cardType) return { chips: null, remote: 0, note: `card type not reported: ${NOT_SAID}` };
  const known = KNOWN[cardKey(cardType)];
  if (known) return { ...known };
  return { chips: null, remote: 0, note: `${cardType}: ${NOT_SAID}` };
}

/** A card or a single chip to number: `chips` devices, the last `remote` of them remote. */
export interface ChipSource<T> {
  chips: number;
  remote: number;
  /** Carried to every chip of this entry. */
  item: T;
}

export interface NumberedChip<T> {
  item: T;
  /** Position of its entry in the list (the card's index among the entries). */
  entry: number;
  /** Which chip of the entry (0 = local). */
  chip: number;
  remote: boolean;
}

/**
 * Cards → tt-metal device order. ASSUMPTION (not in our sources): every entry's local chips come
 * first, in entry order, then the remote chips, in the same order, which is how a T3K (four n300)
 * is commonly described: MMIO devices 0–3, remote 4–7. Declare devices one by one in a config
 * file where a machine numbers them otherwise.
 */
export function numberChips<T>(entries: readonly ChipSource<T>[]): NumberedChip<T>[] {
  const local: NumberedChip<T>[] = [],
    remote: NumberedChip<T>[] = [];
  entries.forEach((e, entry) => {
    for (let chip = 0; chip < e.chips; chip++) {
      const isRemote = chip >= e.chips - e.remote;
      (isRemote ? remote : local).push({ item: e.item, entry, chip, remote: isRemote });
    }
  });
  return [...local, ...remote];
}

/**
 * tt-metal device ids of each card's chips (numberChips order), or null when one card's chips
 * are unknown: the others' numbering would then rest on what no source says, so nothing is
 * numbered (the registry then declares nothing from the driver and says why).
 */
export function deviceIdsOfCards(
  cards: readonly { chips: number | null; remote: number }[],
): number[][] | null {
  if (cards.some((c) => c.chips === null)) return null;
  const ids: number[][] = cards.map(() => []);
  const order = numberChips(cards.map((c, i) => ({ chips: c.chips!, remote: c.remote, item: i })));
  order.forEach((chip, id) => ids[chip.item].push(id));
  return ids;
}
