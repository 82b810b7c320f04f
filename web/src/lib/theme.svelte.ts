export type ThemeChoice = 'system' | 'light' | 'dark'

/** The theme choice: 'system' follows prefers-color-scheme; the choice persists in localStorage. */
export const theme = $state<{ choice: ThemeChoice }>({ choice: readChoice() })

function readChoice(): ThemeChoice {
  try {
    const t = localStorage.getItem('tm-theme')
    return t === 'light' || t === 'dark' ? t : 'system'
  } catch {
    return 'system'
  }
}

// The app renders in the browser only (ssr off); the guard keeps the build's server pass safe.
const systemDark =
  typeof window === 'undefined' ? undefined : window.matchMedia('(prefers-color-scheme: dark)')

/**
 * The palette hangs on `data-theme` alone (one dark block in app.css), so
 * 'system' is resolved here and kept in step with the OS setting.
 */
function apply() {
  document.documentElement.dataset.theme = isDark() ? 'dark' : 'light'
}
systemDark?.addEventListener('change', apply)

export function setTheme(choice: ThemeChoice) {
  theme.choice = choice
  if (choice === 'system') localStorage.removeItem('tm-theme')
  else localStorage.setItem('tm-theme', choice)
  apply()
}

export function isDark(): boolean {
  if (theme.choice !== 'system') return theme.choice === 'dark'
  return systemDark?.matches ?? false
}
