/**
 * A row group of flat columns read page by page: each column's pages fetched and decoded one at a time, in file order,
 * and rows handed on `batchRecords` at a time, so memory holds a page per column (the writer's page size, 1 MB by
 * the usual default) and a batch of rows, however many rows the row group has. Each page is decoded once.
 *
 * hyparquet's own readers decode a column chunk whole, or, for a range of rows, every page the range touches: read
 * range by range, a page of a million booleans would be decoded again for each batch. Its page decoder (`readPage`,
 * with the dictionary, levels, compression and the conversions that `parsers` give) is used as it is, through the
 * module paths hyparquet exports (`hyparquet/src/*.js`). Only flat top-level columns (no list, no struct) are read so;
 * parquet.ts reads other schemas by row ranges.
 */
import type { AsyncBuffer, ColumnMetaData, DecodedArray, FileMetaData, ParquetParsers, RowGroup, SchemaTree } from 'hyparquet';
import { parquetSchema } from 'hyparquet';
import { parquetHeader, readPage } from 'hyparquet/src/column.js';
import { convert, DEFAULT_PARSERS } from 'hyparquet/src/convert.js';
import { getTreePath, isFlatColumn } from 'hyparquet/src/schema.js';
import type { ColumnDecoder } from 'hyparquet/src/types.js';

/** Bytes read at once from a column chunk: a page header and, mostly, its page. */
const WINDOW_BYTES = 1 << 20;

/** Whether every top-level column of the file is a leaf (not repeated), which pageRows reads. */
export function isFlat(metadata: FileMetaData): boolean {
  const tree = parquetSchema(metadata);
  return tree.children.every((c) => isFlatColumn(getTreePath(tree, [c.element.name])));
}

/**
 * The rows of row group `group`, `columns` (top-level names, in this order) of each, in arrays of at most
 * `batchRecords` rows. Throws for a column chunk that is corrupt or holds fewer values than the row group's rows.
 */
export async function* pageRows(file: AsyncBuffer, metadata: FileMetaData, group: RowGroup, columns: readonly string[], parsers: Partial<ParquetParsers>, batchRecords: number): AsyncGenerator<unknown[][]> {
  const tree = parquetSchema(metadata);
  const readers = columns.map((name) => {
    const chunk = group.columns.find((c) => c.meta_data?.path_in_schema[0] === name)?.meta_data;
    if (chunk === undefined) throw new Error(`row group has no column chunk for ${name}`);
    return new ColumnPages(file, chunk, tree, parsers);
  });
  for (let left = Number(group.num_rows); left > 0;) {
    const n = Math.min(batchRecords, left);
    const rows: unknown[][] = Array.from({ length: n }, () => new Array<unknown>(columns.length));
    for (let c = 0; c < readers.length; c++) await (readers[c] as ColumnPages).fill(rows, c, n);
    left -= n;
    yield rows;
  }
}

/** One column chunk's values, a page at a time. */
class ColumnPages {
  private offset: number;
  private readonly end: number;
  private readonly decoder: ColumnDecoder;
  private dictionary: DecodedArray | undefined;
  private values: DecodedArray = [];
  private at = 0;

  constructor(private readonly file: AsyncBuffer, private readonly meta: ColumnMetaData, tree: SchemaTree, parsers: Partial<ParquetParsers>) {
    this.offset = Number(meta.dictionary_page_offset || meta.data_page_offset);
    this.end = this.offset + Number(meta.total_compressed_size);
    const schemaPath = getTreePath(tree, meta.path_in_schema);
    const element = schemaPath[schemaPath.length - 1]?.element;
    if (element === undefined) throw new Error(`no schema element for column ${meta.path_in_schema.join('.')}`);
    this.decoder = { pathInSchema: meta.path_in_schema, element, schemaPath, type: meta.type, codec: meta.codec, utf8: false, parsers: { ...DEFAULT_PARSERS, ...parsers } };
  }

  /** Sets column `c` of the first `n` rows of `rows` from the values to come. */
  async fill(rows: unknown[][], c: number, n: number): Promise<void> {
    for (let filled = 0; filled < n;) {
      if (this.at >= this.values.length) {
        this.values = await this.nextPage();
        this.at = 0;
        continue;
      }
      const take = Math.min(n - filled, this.values.length - this.at);
      for (let k = 0; k < take; k++) (rows[filled + k] as unknown[])[c] = this.values[this.at + k];
      this.at += take;
      filled += take;
    }
  }

  /** The values of the next data page (after any dictionary page, kept for the pages that follow). */
  private async nextPage(): Promise<DecodedArray> {
    while (this.offset < this.end) {
      let window = await this.file.slice(this.offset, Math.min(this.end, this.offset + WINDOW_BYTES));
      let reader = { view: new DataView(window), offset: 0 };
      let header;
      try {
        header = parquetHeader(reader);
      } catch (err) {
        // A header longer than the window (large statistics): read the rest of the chunk for it.
        if (window.byteLength >= this.end - this.offset) throw err;
        window = await this.file.slice(this.offset, this.end);
        reader = { view: new DataView(window), offset: 0 };
        header = parquetHeader(reader);
      }
      const pageAt = this.offset + reader.offset;
      const pageEnd = pageAt + header.compressed_page_size;
      if (pageEnd > this.end) throw new Error(`column ${this.meta.path_in_schema.join('.')}: a page runs past its column chunk`);
      if (pageEnd > this.offset + window.byteLength) reader = { view: new DataView(await this.file.slice(pageAt, pageEnd)), offset: 0 };
      this.offset = pageEnd;
      if (header.type === 'DICTIONARY_PAGE') {
        const { data } = readPage(reader, header, this.decoder, undefined, undefined, 0);
        if (data) this.dictionary = convert(data, this.decoder);
      } else if (header.type === 'DATA_PAGE' || header.type === 'DATA_PAGE_V2') {
        return readPage(reader, header, this.decoder, this.dictionary, undefined, 0).data ?? [];
      }
    }
    throw new Error(`column ${this.meta.path_in_schema.join('.')} holds fewer values than its row group has rows`);
  }
}
