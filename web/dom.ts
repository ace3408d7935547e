/** Small DOM helpers: elements are built from text, never from HTML strings. */
type Child = Node | string;

export function h(tag: string, attrs: Record<string, string | boolean> = {}, children: Child[] = []): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false) continue;
    el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children);
  return el;
}

export function clear(el: HTMLElement): void {
  el.replaceChildren();
}

export function cell(text: string, cls = 'num'): HTMLElement {
  return h('td', { class: cls }, [text]);
}

export function link(to: string, text: string, cls?: string): HTMLElement {
  return h('a', { href: to, ...(cls ? { class: cls } : {}) }, [text]);
}

export function button(text: string, onClick: () => void, attrs: Record<string, string | boolean> = {}): HTMLElement {
  const b = h('button', { type: 'button', ...attrs }, [text]);
  b.addEventListener('click', onClick);
  return b;
}

const format = new Intl.NumberFormat('en-US');

export function num(n: number): string {
  return format.format(n);
}

/** `2026-12-01 16:05:09 UTC`. */
export function time(iso: string): string {
  return `${iso.replace('T', ' ').slice(0, 19)} UTC`;
}

export function duration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

/** `12 s ago (2026-12-01 16:05:09 UTC)`. */
export function ago(iso: string): string {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return `${duration(s)} ago (${time(iso)})`;
}
