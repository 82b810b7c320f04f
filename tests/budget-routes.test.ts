import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAlertStore } from '../services/src/alerts/alert-store.ts'
import { budget, seedOwner, usageRow } from './budget-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

let stack: TestStack
beforeAll(async () => {
  stack = await startTestStack()
})
afterAll(async () => stack?.close())

const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }

describe('budget and alert API', () => {
  it('creates, lists with spend, and deletes budgets; rejects what it cannot enforce', async () => {
    const { app, core } = stack
    const { key } = await seedOwner(core.store, 'api')
    core.recorder.record(usageRow(key, 1_250_000_000))
    await core.recorder.flush()

    const bad = await app.inject({
      method: 'POST',
      url: '/api/admin/budgets',
      headers: admin,
      payload: { scope: 'key', scopeId: key.keyId, period: 'month', capUsd: 5, timezone: 'Mars/Olympus' },
    })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().error.message).toContain('timezone')
    const unknown = await app.inject({
      method: 'POST',
      url: '/api/admin/budgets',
      headers: admin,
      payload: { scope: 'team', scopeId: 'team_nope', period: 'day', capUsd: 5 },
    })
    expect(unknown.statusCode).toBe(400)
    expect(unknown.json().error.code).toBe('unknown_scope')

    const created = await app.inject({
      method: 'POST',
      url: '/api/admin/budgets',
      headers: admin,
      payload: { scope: 'key', scopeId: key.keyId, period: 'month', capUsd: 5, timezone: 'Europe/Berlin' },
    })
    expect(created.statusCode).toBe(201)
    const b = created.json().budget
    expect(b).toMatchObject({
      scope: 'key',
      capUsd: 5,
      thresholds: [50, 80, 100],
      spentUsd: 1.25,
      percentUsed: 25,
    })
    expect(Date.parse(b.resetsAt)).toBeGreaterThan(Date.now())

    const list = await app.inject({ url: '/api/admin/budgets', headers: admin })
    expect(list.json().budgets.map((x: { budgetId: string }) => x.budgetId)).toContain(b.budgetId)

    const del = await app.inject({
      method: 'DELETE',
      url: `/api/admin/budgets/${b.budgetId}`,
      headers: admin,
    })
    expect(del.statusCode).toBe(204)
    const again = await app.inject({
      method: 'DELETE',
      url: `/api/admin/budgets/${b.budgetId}`,
      headers: admin,
    })
    expect(again.statusCode).toBe(404)
    // Durable: a fresh read of ClickHouse agrees with the cache.
    await core.store.refresh()
    expect(core.store.budgets().map((x) => x.budgetId)).not.toContain(b.budgetId)
  })

  it('keeps admin routes for admins and shows members only the budgets and alerts that bound them', async () => {
    const { app, core } = stack
    const mine = await seedOwner(core.store, 'member_a')
    const other = await seedOwner(core.store, 'member_b')
    await core.store.upsertBudget(budget({ budgetId: 'b_mine', scopeId: mine.key.keyId, capUsd: 3 }))
    await core.store.upsertBudget(
      budget({ budgetId: 'b_team', scope: 'team', scopeId: mine.teamId, capUsd: 30 }),
    )
    await core.store.upsertBudget(budget({ budgetId: 'b_other', scopeId: other.key.keyId, capUsd: 3 }))
    const alerts = createAlertStore(core.warehouse)
    for (const subjectId of ['b_mine', 'b_other']) {
      await alerts.insertIfNew({
        kind: 'threshold',
        subjectType: 'budget',
        subjectId,
        windowStart: new Date().toISOString(),
        level: 50,
        severity: 'info',
        message: 'passed 50 %',
        valueUsd: 1.5,
        baselineUsd: 3,
        details: { budgetId: subjectId },
      })
    }
    const member = { authorization: `Bearer ${mine.plaintext}` }
    expect((await app.inject({ url: '/api/admin/budgets', headers: member })).statusCode).toBe(403)
    expect((await app.inject({ url: '/api/admin/alerts', headers: member })).statusCode).toBe(403)
    expect((await app.inject({ url: '/api/budgets/status' })).statusCode).toBe(401)

    const status = (await app.inject({ url: '/api/budgets/status', headers: member })).json()
    expect(status.budgets.map((b: { budgetId: string }) => b.budgetId).sort()).toEqual(['b_mine', 'b_team'])
    expect(status.alerts.map((a: { subjectId: string }) => a.subjectId)).toEqual(['b_mine'])

    const all = (await app.inject({ url: '/api/admin/alerts?kinds=threshold', headers: admin })).json()
    expect(all.alerts.map((a: { subjectId: string }) => a.subjectId).sort()).toEqual(['b_mine', 'b_other'])
    expect((await app.inject({ url: '/api/admin/alerts?kinds=nope', headers: admin })).statusCode).toBe(400)
  })
})
