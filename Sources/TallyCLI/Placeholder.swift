import TallyLog
