/// Every limit of the event log, in one place, each with its unit and its reason.
/// They are part of the format: raising one is compatible, lowering one is not.
public enum Limits {
    /// Stream ids are keys of the `streams` table; LMDB keys are at most 511 bytes, and a stream id is
    /// an identifier ("voucher-000123", "cart-<uuid>"), not a document. UTF-8 bytes.
    public static let streamIDBytesMax = 200
    /// Event type names key the `type-events` table and appear in every record. UTF-8 bytes,
    /// letters, digits and `.`, `-`, `_`, `:` only, starting with a letter.
    public static let eventTypeBytesMax = 100
    /// Who caused an event ("admin:ana", "booth:3/operator:kim", "system:demo"). UTF-8 bytes.
    public static let actorBytesMax = 200
    /// Metadata is a small JSON object of context (client, ip hash, command id); payloads carry data.
    public static let metadataBytesMax = 16 << 10
    /// One event's payload. Commerce events are hundreds of bytes; a megabyte leaves room for a
    /// checkout with hundreds of lines while keeping one bad client from filling the map.
    public static let payloadBytesMax = 1 << 20
    /// Events in one append call. A batch is one unit of atomicity and is held in memory whole.
    public static let batchEventsMax = 100_000
    /// Encoded bytes of one append call, for the same reason.
    public static let batchBytesMax = 64 << 20
    /// Events the group committer packs into one LMDB write transaction. Bounds the transaction's
    /// dirty pages (and so its memory) while keeping one sync for many callers.
    public static let transactionEventsMax = 200_000
    /// Events read from LMDB per read transaction when a reader walks the log: short transactions
    /// let the writer reuse pages, while keeping the per-transaction cost negligible.
    public static let readChunkEvents = 1024
    /// The last position a log can hold: index entries store positions in 6 bytes (store format 2),
    /// 2.8 × 10^14 events, 89 years at 100,000 events a second.
    public static let positionMax: UInt64 = (1 << 48) - 1
    /// The last version a stream can reach: `stream-events` stores versions in 4 bytes. A stream is one
    /// aggregate's history; four billion events in one is a modelling error, not a workload.
    public static let streamVersionMax = UInt64(UInt32.max)
}
