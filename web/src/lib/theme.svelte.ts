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

export function setTheme(choice: ThemeChoice) {
  theme.choice = choice
  const root = document.documentElement
  if (choice === 'system') {
    delete root.dataset.theme
    localStorage.removeItem('tm-theme')
  } else {
    root.dataset.theme = choice
    localStorage.setItem('tm-theme', choice)
  }
}

export function isDark(): boolean {
  if (theme.choice !== 'system') return theme.choice === 'dark'
  return window.matchMedia('(prefers-color-scheme: dark)').matches
}
