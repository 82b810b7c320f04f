import { get, type Me, send } from './api'

/** Who is signed in; the shell loads it once and pages read it. */
export const session = $state<{ me: Me | null; loaded: boolean }>({ me: null, loaded: false })

export async function loadMe(): Promise<Me | null> {
  try {
    session.me = await get<Me>('/api/me')
  } catch {
    session.me = null
  }
  session.loaded = true
  return session.me
}

export async function signIn(token: string): Promise<Me> {
  const me = await send<Me>('POST', '/api/session', { token })
  session.me = me
  session.loaded = true
  return me
}

/** Ends the session on the server (the cookie alone would keep working elsewhere); throws if it could not. */
export async function signOut(): Promise<void> {
  await send('DELETE', '/api/session')
  session.me = null
}

export const canSeeTeams = (me: Me | null) => me?.role === 'admin' || me?.role === 'lead'
export const isAdmin = (me: Me | null) => me?.role === 'admin'
