/**
 * The shapes of the daemon's answers, as the page reads them. The server side types them in src/http/dashboard.ts and
 * src/commands/{status,explain}.ts; the page is built apart from it (no Node types here), so they are restated.
 */
export interface HistoryPoint {
  cycle: number;
  finishedAt: string;
  ok: boolean;
  error: string | null;
  seconds: number | null;
  filesDone: number;
  filesFailed: number;
  filesUnchanged: number;
  recordsLoaded: number;
  recordsRejected: number;
  recordsSkipped: number;
  recordsPerSecond: number | null;
  filesPerSecond: number | null;
}

export interface FailedFile { key: string; error: string | null; attempts: number; nextAttemptAt: string | null }

export interface Overview {
  state: 'running' | 'draining';
  profile: string;
  bucket: string;
  database: string;
  actions: boolean;
  pollSeconds: number;
  status: {
    files: { total: number; done: number; failed: number };
    records: { loaded: number; rejected: number; skipped: number };
    failed: FailedFile[];
    lastDoneAt: string | null;
    lastCycle: { cycle: number; finishedAt: string; ok: boolean; error: string | null; summary: { listed: number; seconds: number } | null } | null;
    lastCycleError: string | null;
    reprocess: Array<{ key: string; state: string }>;
  };
  pending: { files: number; oldestAgeSeconds: number };
  lastSuccessAt: string | null;
  current: { cycle: number; startedAt: string; planned: number; done: number; failed: number; unchanged: number; cancelled: number; records: number } | null;
  history: HistoryPoint[];
  historyError: string | null;
}

export interface Problems {
  failed: FailedFile[];
  rejections: {
    total: number;
    groups: Array<{ reason: string; count: number; types: Array<string | null>; example: { sourceKey: string; recordIndex: number; raw: string } }>;
  };
}

export interface FilePage {
  explanation: {
    summary: string;
    entry: {
      status: string; etag: string | null; size: number | null; attempts: number; failures: number; loaded: number; rejected: number; skipped: number;
      error: string | null; firstSeenAt: string; updatedAt: string; doneAt: string | null; checkedAt: string | null; nextAttemptAt: string | null; reprocess: boolean;
    } | null;
    pendingRequests: unknown[];
    next: { reason: string; processes: boolean; until: string | null };
  };
  tables: Array<{ name: string; rows: number }>;
}

export interface Page { rows: Array<Record<string, unknown>>; next: string | null }
