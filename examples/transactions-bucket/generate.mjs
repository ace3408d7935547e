// Writes the transactions example bucket (files_list.data and its .data files) from the records below.
// Deterministic: no clock, no randomness; `node examples/transactions-bucket/generate.mjs` rewrites identical files.
// Each record carries what the schemas in schemas/transactions/ must make of it (`expect`: "valid", "skip" or the
// exact rejection reason); test/integration/transactions.test.ts loads the files on disk with the daemon, on every
// dialect, and checks both against it. Only `record` is written.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const customerId = (n) => `6f1d2c3a-1b4e-4c5d-9e8f-${String(n).padStart(12, '0')}`;
const transactionId = (n) => `7b2e9c41-5d3a-4f6b-8c1d-${String(n).padStart(12, '0')}`;

const customer = (data, expect = 'valid') => ({ record: { type: 'customer', data }, expect });
const product = (data, expect = 'valid') => ({ record: { type: 'product', data }, expect });
const transaction = (data, expect = 'valid') => ({ record: { type: 'transaction', data }, expect });
/** A valid sale; `over` changes or adds fields (undefined removes one). */
const sale = (n, over = {}, expect = 'valid') => {
  const data = {
    transaction_id: transactionId(n), customer_id: customerId(1 + (n % 6)), sku: 'KBD-0042', quantity: 1,
    amount: 49.9, currency: 'EUR', status: 'completed', occurred_at: `2024-03-${String(1 + (n % 28)).padStart(2, '0')}T10:15:00Z`,
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete data[k];
    else data[k] = v;
  }
  return transaction(data, expect);
};

export const FILES = [
  {
    key: '3c8f0a2e-7d41-4b96-a5e2-1f0c9d8b7a61.data',
    records: [
      customer({ customer_id: customerId(1), email: 'ana.silva@example.com', full_name: 'Ana Silva', country: 'PT', birth_date: '1988-07-14', signup_date: '2023-11-02', loyalty_tier: 'gold', marketing_opt_in: true }),
      customer({ customer_id: customerId(2), email: 'ben.okafor@example.org', full_name: 'Ben Okafor', country: 'GB', birth_date: null, signup_date: '2024-01-15' }),
      customer({ customer_id: customerId(3), email: 'chloe+shop@example.net', full_name: 'Chloé Durand', country: 'FR', signup_date: '2024-02-01', loyalty_tier: 'silver' }),
      customer({ customer_id: customerId(4), email: 'd.mueller@example.de', full_name: 'Dieter Müller', country: 'DE', birth_date: '1971-03-30', signup_date: '2022-06-20', marketing_opt_in: false }),
      customer({ customer_id: customerId(5), email: 'maria.garcia@', full_name: 'María García', country: 'ES', signup_date: '2024-02-11' },
        'email: expected Email, got a string of 13 characters'),
      customer({ customer_id: customerId(6), email: 'eve.johnson@example.com', full_name: 'Eve Johnson', country: 'US', birth_date: '1995-12-01', signup_date: '2023-04-09' }),
      product({ sku: 'KBD-0042', name: 'Mechanical keyboard', category: 'electronics', unit_price: 49.9, currency: 'EUR', stock: 120, description: 'Tenkeyless, brown switches, UK layout.' }),
      product({ sku: 'MUG-0007', name: 'Enamel mug', category: 'home', unit_price: 12.5, currency: 'GBP', description: null }),
      product({ sku: 'BOK-1984', name: 'Nineteen Eighty-Four', category: 'books', unit_price: 9.99, currency: 'USD', stock: 40 }),
      product({ sku: 'TOY-0311', name: 'Wooden train set', category: 'toys', unit_price: 24, currency: 'EUR', stock: 15 }),
      product({ sku: 'kbd-42', name: 'Keyboard (old SKU)', category: 'electronics', unit_price: 39.9, currency: 'EUR' },
        'sku: expected string matching /^[A-Z]{3}-[0-9]{4}$/, got "kbd-42"'),
      product({ sku: 'LMP-0100', name: '', category: 'home', unit_price: 31, currency: 'EUR', stock: 5 },
        'name: expected at least 1 character (has 0), got ""'),
      sale(1, { customer_id: customerId(1), occurred_at: '2024-03-01T10:15:00Z' }),
      sale(2, { customer_id: customerId(2), sku: 'MUG-0007', quantity: 2, amount: 25, currency: 'GBP', occurred_at: '2024-03-01T11:15:00+01:00', coupon_code: 'SPRING24' }),
      sale(3, { customer_id: customerId(3), sku: 'BOK-1984', quantity: '2', amount: 19.98, currency: 'USD' },
        'quantity: expected SafeInteger >= 1 and <= 1000, got "2"'),
      sale(4, { customer_id: customerId(4), sku: 'TOY-0311', amount: 24, channel: 'store', occurred_at: '2024-03-02T09:00:00.250-05:00' }),
    ],
  },
  {
    key: '9a4b6e13-2c57-4f08-b1d9-6e3a2f7c0b52.data',
    records: [
      customer({ customer_id: customerId(7), email: 'farid.haddad@example.com', full_name: 'Farid Haddad', country: 'FR', signup_date: '2024-03-01', loyalty_tier: 'bronze' }),
      customer({ customer_id: customerId(8), email: 'grace.lee@example.com', full_name: 'Grace Lee', country: 'US', signup_date: '2024-02-30' },
        'signup_date: expected CalendarDate(YYYY-MM-DD), got "2024-02-30"'),
      customer({ customer_id: customerId(9), email: 'hana.sato@example.jp', full_name: 'Hana Sato', country: 'JP', birth_date: '2000-02-29', signup_date: '2024-03-03', marketing_opt_in: true }),
      customer({ customer_id: customerId(10), full_name: 'Ivan Petrov', country: 'BG', signup_date: '2024-03-04' },
        'email: expected Email, got missing'),
      product({ sku: 'GRC-0500', name: 'Ground coffee 500 g', category: 'grocery', unit_price: 7.2, currency: 'EUR', stock: 300 }),
      product({ sku: 'HOM-0250', name: 'Linen tea towel', category: 'home', currency: 'GBP', stock: 60 },
        'unit_price: expected FiniteNumber > 0, got missing'),
      sale(5, { customer_id: customerId(7), sku: 'GRC-0500', quantity: 3, amount: 21.6 }),
      sale(6, { customer_id: customerId(1), amount: -12.5, status: 'refunded' },
        'amount: expected FiniteNumber > 0, got -12.5'),
      sale(7, { customer_id: customerId(9), currency: 'JPY', amount: 7800 },
        'currency: expected "EUR" | "USD" | "GBP", got "JPY"'),
      sale(8, { customer_id: customerId(6), occurred_at: '2024-03-02T14:30:00' },
        'occurred_at: expected DateTime(RFC 3339 with offset), got "2024-03-02T14:30:00"'),
      sale(9, { customer_id: customerId(1), status: 'refunded', occurred_at: '2024-03-05T08:00:00+00:00' }),
      sale(10, { customer_id: customerId(2), sku: 'MUG-0007', amount: 12.5, currency: 'GBP', coupon_code: null }),
      sale(11, { customer_id: customerId(4), sku: 'GRC-0500', quantity: 10, amount: 72, channel: 'store' }),
      sale(12, { customer_id: customerId(3), status: 'shipped' },
        'status: expected "pending" | "completed" | "refunded" | "failed", got "shipped"'),
      sale(13, { customer_id: customerId(9), sku: 'BOK-1984', amount: 9.99, currency: 'USD', channel: 'app', occurred_at: '2024-03-06T23:59:59+09:00' }),
      sale(14, { customer_id: customerId(6), amount: 0, status: 'failed' },
        'amount: expected FiniteNumber > 0, got 0'),
      { record: { type: 'refund', data: { transaction_id: transactionId(9), reason: 'damaged in transit', amount: 49.9 } }, expect: 'skip' },
      sale(15, { customer_id: customerId(7), sku: 'TOY-0311', amount: 24, status: 'pending' }),
    ],
  },
  {
    key: 'd15e7c90-84a3-4e2b-9f6c-3b8a0d5e1c43.data',
    records: [
      // The same key as in the first file: this later file's row wins (price cut, stock down).
      product({ sku: 'KBD-0042', name: 'Mechanical keyboard', category: 'electronics', unit_price: 44.9, currency: 'EUR', stock: 80, description: 'Tenkeyless, brown switches, UK layout. Spring price.' }),
      product({ sku: 'ELC-0777', name: 'USB-C charger 65 W', category: 'electronics', unit_price: 29.95, currency: 'USD', stock: 200 }),
      customer({ customer_id: 'C-1001', email: 'jonas.berg@example.se', full_name: 'Jonas Berg', country: 'SE', signup_date: '2024-03-07' },
        'customer_id: expected UUID, got "C-1001"'),
      customer({ customer_id: customerId(11), email: 'kofi.mensah@example.com', full_name: 'Kofi Mensah', country: 'GH', birth_date: '1990-10-10', signup_date: '2024-03-08', loyalty_tier: 'silver' }),
      sale(16, { customer_id: customerId(11), amount: 44.9 }),
      sale(17, { transaction_id: 'tx-2024-000017', customer_id: customerId(11), sku: 'ELC-0777', amount: 29.95, currency: 'USD' },
        'transaction_id: expected UUID, got "tx-2024-000017"'),
      sale(18, { customer_id: customerId(7), sku: 'KBD0042', quantity: 0 },
        'sku: expected string matching /^[A-Z]{3}-[0-9]{4}$/, got "KBD0042"; quantity: expected SafeInteger >= 1 and <= 1000, got 0'),
      sale(19, { customer_id: customerId(2), sku: 'ELC-0777', quantity: 2, amount: 59.9, currency: 'USD', channel: 'app' }),
      sale(20, { customer_id: customerId(3), coupon_code: 'spring' },
        'coupon_code: expected string matching /^[A-Z0-9]{4,12}$/ | null, got "spring"'),
      sale(21, { customer_id: customerId(4), sku: 'BOK-1984', quantity: 3, amount: 29.97, currency: 'USD', occurred_at: '2024-03-08T17:45:10.5+05:30' }),
      sale(22, { customer_id: customerId(6), sku: 'GRC-0500', quantity: 2, amount: 14.4 }),
      sale(23, { customer_id: customerId(9), amount: 44.9, status: 'pending', channel: 'web' }),
    ],
  },
  {
    key: '58b2f4d7-0e69-4a1c-8d3f-7c2e9b4a6d34.data',
    records: [
      customer({ customer_id: customerId(12), email: 'lena.kowalski@example.pl', full_name: 42, country: 'PL', signup_date: '2024-03-09' },
        'full_name: expected string, got 42'),
      customer({ customer_id: customerId(13), email: 'marco.rossi@example.it', full_name: 'Marco Rossi', country: 'IT', birth_date: '1983-05-05', signup_date: '2024-03-10', referrer: 'newsletter' }),
      { record: { type: 'transaction', data: null }, expect: 'data: expected object, got null' },
      sale(24, { customer_id: customerId(13), sku: 'MUG-0007', quantity: 4, amount: 50, currency: 'GBP', coupon_code: 'WELCOME10' }),
      sale(25, { customer_id: customerId(11), sku: 'TOY-0311', amount: 24, occurred_at: '2024-03-10T12:00:00+01:00' }),
      sale(26, { customer_id: customerId(1), sku: 'ELC-0777', amount: 29.95, currency: 'USD', status: 'failed' }),
      sale(27, { customer_id: customerId(5), sku: 'GRC-0500', amount: 7.2, occurred_at: '2024-03-11T25:00:00Z' },
        'occurred_at: expected DateTime(RFC 3339 with offset), got "2024-03-11T25:00:00Z"'),
      sale(28, { customer_id: customerId(2), amount: 44.9, channel: 'store', occurred_at: '2024-03-11T18:20:00-00:00' }),
      sale(29, { customer_id: customerId(12), sku: 'BOK-1984', amount: 9.99, currency: 'USD', status: undefined },
        'status: expected "pending" | "completed" | "refunded" | "failed", got missing'),
      sale(30, { customer_id: customerId(7), sku: 'KBD-0042', quantity: 1, amount: 44.9 }),
    ],
  },
];

/** The bytes of one data file: a JSON array, one record a line. */
export function render(file) {
  return `[\n${file.records.map((r) => JSON.stringify(r.record)).join(',\n')}\n]\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = dirname(fileURLToPath(import.meta.url));
  for (const f of FILES) writeFileSync(join(dir, f.key), render(f));
  writeFileSync(join(dir, 'files_list.data'), FILES.map((f) => `${f.key}\n`).join(''));
  console.log(`wrote files_list.data and ${FILES.length} data files to ${dir}`);
}
