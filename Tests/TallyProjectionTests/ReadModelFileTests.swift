import Foundation
import GRDB
import Testing
import TallyTestSupport
@testable import TallyProjection

@Suite struct ReadModelFileTests {
    /// The connections that apply batches keep SQLite's temporary files (statement journals) in
    /// memory; a reader leaves SQLite's default, and an index build sorts to files
    /// (`ReadModelFile.open`, `createQueryIndexes`).
    @Test func writersKeepTemporaryFilesInMemory() throws {
        let path = testPath("read-model") + ".sqlite"
        defer { ReadModelFile.remove(path) }
        func tempStore(_ mode: ReadModelFile.Mode) throws -> Int? {
            try ReadModelFile.open(path, mode: mode).queue.read { try Int.fetchOne($0, sql: "PRAGMA temp_store") }
        }
        #expect(try tempStore(.building) == 2)
        #expect(try tempStore(.serving) == 2)
        #expect(try tempStore(.readOnly) == 0)
    }
}
