import Foundation
import GRDB
import Testing
import TallyTestSupport
@testable import TallyProjection

@Suite struct ReadModelFileTests {
    /// The connections that apply batches keep SQLite's temporary files (statement journals) in
    /// memory and have a 32 MiB page cache, building or catching up; a reader keeps SQLite's defaults,
    /// and an index build sorts to files (`ReadModelFile.open`, `createQueryIndexes`).
    @Test func writersKeepTemporaryFilesInMemoryAndABuildsPageCache() throws {
        let path = testPath("read-model") + ".sqlite"
        defer { ReadModelFile.remove(path) }
        func pragma(_ mode: ReadModelFile.Mode, _ name: String) throws -> Int? {
            try ReadModelFile.open(path, mode: mode).queue.read { try Int.fetchOne($0, sql: "PRAGMA \(name)") }
        }
        #expect(try pragma(.building, "temp_store") == 2)
        #expect(try pragma(.serving, "temp_store") == 2)
        #expect(try pragma(.readOnly, "temp_store") == 0)
        #expect(try pragma(.building, "cache_size") == -32_768)
        #expect(try pragma(.serving, "cache_size") == -32_768)
        #expect(try pragma(.readOnly, "cache_size") == -2_000)
    }
}
