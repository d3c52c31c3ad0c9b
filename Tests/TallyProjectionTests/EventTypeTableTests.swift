import Foundation
import TallyLog
@testable import TallyProjection
import Testing

/// `EventTypeTable`: each distinct type's bytes numbered once, within a bounded capacity.
@Suite struct EventTypeTableTests {
    @Test func numbersEachTypeOnceAndStopsGrowingAtItsCapacity() {
        var table = EventTypeTable()
        func number(_ text: String) -> Int? {
            var text = text
            return text.withUTF8 { table.number(of: UnsafeRawBufferPointer($0)) }
        }
        // Through every rehash, up to the capacity: a new type gets the next number, a known one its own.
        for index in 0..<EventTypeTable.capacity {
            #expect(number("Type\(index)") == index)
            if index % 4_099 == 0 { #expect(number("Type\(index / 2)") == index / 2) }
        }
        #expect(table.names.count == EventTypeTable.capacity && table.names[12_345] == "Type12345")
        // Full: a new type has no number (its handling is worked out per event); known ones keep theirs.
        #expect(number("OneTooMany") == nil && number("OneTooMany") == nil)
        #expect(number("Type0") == 0 && number("Type65535") == 65_535)
        #expect(table.names.count == EventTypeTable.capacity)
        // Bytes, not text: a prefix or a longer type is another type.
        var other = EventTypeTable()
        for text in ["Sale", "SaleRecorded", "Sal", "SaleRecorded2", "é", "e\u{301}"] {
            var bytes = text
            _ = bytes.withUTF8 { other.number(of: UnsafeRawBufferPointer($0)) }
        }
        // (Swift's == takes "é" and "e\u{301}" as equal; the table must not: they are other bytes.)
        #expect(other.names.count == 6 && other.names.map { Array($0.utf8) } == ["Sale", "SaleRecorded", "Sal", "SaleRecorded2", "é", "e\u{301}"].map { Array($0.utf8) })
    }
}

/// The runner's texts of the last recorded-at time: each time asked for gets its own text, whatever
/// came before it.
@Suite struct TimeTextsTests {
    @Test func eachTimeGetsItsOwnText() throws {
        let times = TimeTexts()
        let moments = try ["2026-12-01T23:59:59.999999Z", "2026-12-02T00:00:00Z", "2026-12-01T23:59:59.999999Z", "1970-01-01T00:00:00Z",
                           "1970-01-01T00:00:00Z", "2026-12-02T00:00:00.000001Z"].map { try #require(Timestamp(iso8601: $0)) }
        for (index, moment) in moments.enumerated() {
            #expect(times.day(moment) == String(moment.iso8601.prefix(10)), "day \(index)")
            #expect(times.iso8601(moment) == moment.iso8601, "time \(index)")
            #expect(times.iso8601(moment) == moment.iso8601 && times.day(moment) == String(moment.iso8601.prefix(10)), "again \(index)")
        }
        #expect(times.day(moments[0]) == "2026-12-01" && times.day(moments[1]) == "2026-12-02")
        // Even the first time asked for being the smallest there is.
        let earliest = Timestamp(microsecondsSinceEpoch: .min)
        #expect(TimeTexts().iso8601(earliest) == earliest.iso8601 && !earliest.iso8601.isEmpty)
    }
}
