const WHITESPACE_RE = /\s+/gu;
/** Anything that is not a letter, combining mark, digit (of any script) or `_`. */
const NON_WORD_RE = /[^\p{L}\p{M}\p{N}_]+/gu;
const UNDERSCORE_RUN_RE = /_{2,}/g;
const EDGE_UNDERSCORES_RE = /^_+|_+$/g;

/**
 * Normalizes a title into a key-friendly identifier, keeping the letters and digits of every script.
 *
 * Steps, in order:
 * 1. Unicode NFC, so a precomposed `é` and `e` + combining acute give the same result;
 * 2. lower case (locale-independent `toLowerCase`);
 * 3. every run of whitespace becomes `_`;
 * 4. every character that is not a letter (`\p{L}`), combining mark (`\p{M}`), digit/number (`\p{N}`) or `_`
 *    is removed (punctuation, symbols, `-`, `&`, emoji…);
 * 5. runs of `_` collapse to one `_`, and leading/trailing `_` are dropped.
 *
 * The result may be empty (e.g. for `"!!!"`); callers that use it as a key must reject that.
 *
 * @example
 * normalizeTitle('  Hello,   World!! ') // 'hello_world'
 * normalizeTitle('Amélie')              // 'amélie'
 * normalizeTitle('Stone & Ed')          // 'stone_ed'
 * normalizeTitle('Крёстный отец')       // 'крёстный_отец'
 * normalizeTitle('東京物語')             // '東京物語'
 * normalizeTitle('___a___')             // 'a'
 * normalizeTitle('snake_case title')    // 'snake_case_title'
 * normalizeTitle('Spider-Man')          // 'spiderman'
 */
export function normalizeTitle(s: string): string {
  return s
    .normalize('NFC')
    .toLowerCase()
    .replace(WHITESPACE_RE, '_')
    .replace(NON_WORD_RE, '')
    .replace(UNDERSCORE_RUN_RE, '_')
    .replace(EDGE_UNDERSCORES_RE, '');
}
