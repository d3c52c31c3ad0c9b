import TallyCLI
import TallyLog

// An application-wide choice, made before anything allocates in earnest (see `AllocatorTuning`).
AllocatorTuning.applyOnce()
Tally.mainCheckingOutput()
