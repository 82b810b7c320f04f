import { worstCaseSuite } from './budget-worst-case-suite.ts'

// The embedded default: counters in process.
worstCaseSuite('local', () => ({}))
