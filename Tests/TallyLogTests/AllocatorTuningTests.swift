import Foundation
import Testing
import TallyLog

/// The executables fix glibc malloc's thresholds unless the operator already chose them.
struct AllocatorTuningTests {
    @Test func theOperatorsOwnThresholdsStand() {
        #expect(AllocatorTuning.settings(environment: [:]) == AllocatorTuning.recommended)
        // Settings that are not thresholds leave the choice to Tally.
        #expect(AllocatorTuning.settings(environment: ["MALLOC_ARENA_MAX": "2", "GLIBC_TUNABLES": "glibc.pthread.rseq=0"]) == AllocatorTuning.recommended)
        for variable in ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"] {
            #expect(AllocatorTuning.settings(environment: [variable: "1048576"]) == nil, "\(variable)")
        }
        for tunables in ["glibc.malloc.trim_threshold=4194304", "glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=65536",
                         "glibc.malloc.top_pad=0"] {
            #expect(AllocatorTuning.settings(environment: ["GLIBC_TUNABLES": tunables]) == nil, "\(tunables)")
        }
        #expect(AllocatorTuning.recommended.trimThreshold > AllocatorTuning.recommended.mmapThreshold)
    }

    /// Applied, the mmap threshold is 1 MiB: a 512 KiB block comes from the heap (glibc's default
    /// would map it) and a 4 MiB block is mapped. glibc marks a mapped chunk with bit 1 of the size
    /// word just before the pointer it returns.
    ///
    /// The threshold decides only when nothing already free can serve a block: the tests running
    /// beside this one leave freed memory in the arenas, and a 4 MiB piece of it comes back
    /// unmapped (CI saw it once). So the big blocks are held until that free memory is used up; the
    /// next one must be mapped. With a threshold above 4 MiB none would be: the heap would grow.
    @Test func appliedThresholdsDecideWhichBlocksAreMapped() throws {
        let expected = AllocatorTuning.settings(environment: ProcessInfo.processInfo.environment)
        let applied = AllocatorTuning.applyOnce()
        #expect(applied == expected)
        #expect(AllocatorTuning.applyOnce() == applied, "applied once, the same answer after")
        guard let applied else { return }  // the environment chose (checked above); nothing of Tally's to observe
        var held: [UnsafeMutableRawPointer] = []
        defer { held.forEach { free($0) } }
        func allocate(_ bytes: Int) throws -> Bool {
            let block = try #require(malloc(bytes))
            held.append(block)
            return (block - MemoryLayout<Int>.size).load(as: Int.self) & 2 != 0
        }
        #expect(try allocate(applied.mmapThreshold / 2) == false)
        // 64 blocks of 4 MiB are more than the arenas hold free while these tests run.
        var mapped = false
        for _ in 0..<64 where !mapped {
            mapped = try allocate(applied.mmapThreshold * 4)
        }
        #expect(mapped, "a 4 MiB block no free memory could serve was not mapped")
    }
}
