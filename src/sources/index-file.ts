/**
 * Cleans the text of a bucket index into keys: one key per line, with `\r`, surrounding spaces and blank
 * lines dropped and duplicates removed, first occurrence kept so the bucket's order is the load order.
 *
 * @example cleanIndex(' a.data\r\n\r\nb.data\na.data') // ['a.data', 'b.data']
 */
export function cleanIndex(text: string): string[] {
  const seen = new Set<string>();
  const keys: string[] = [];
  for (const line of text.replace(/^\uFEFF/, '').split('\n')) {
    const key = line.trim();
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    keys.push(key);
  }
  return keys;
}
