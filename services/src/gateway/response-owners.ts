/**
 * Which upstream created a Responses API response (`resp_...`), and for whom,
 * so that its companions (GET/DELETE /v1/responses/{id}, cancel, input_items)
 * go back to the provider that holds it and only the user who created it
 * reaches it through the gateway.
 *
 * A deleted response stays remembered, so that later calls get the owner's
 * 404. Bounded and in process: least recently used ids are forgotten first, and a
 * restart forgets them all; the caller then falls back to the default OpenAI
 * upstream, which is where nearly every response lives. A Map keeps insertion
 * order, so re-inserting on use makes it an LRU without a dependency.
 */
export interface ResponseOwner<T> {
  target: T
  userId: string
}

export interface ResponseOwners<T> {
  remember(responseId: string, owner: ResponseOwner<T>): void
  lookup(responseId: string): ResponseOwner<T> | undefined
  readonly size: number
}

export function createResponseOwners<T>(capacity: number): ResponseOwners<T> {
  const owners = new Map<string, ResponseOwner<T>>()
  return {
    remember(responseId, owner) {
      owners.delete(responseId)
      owners.set(responseId, owner)
      if (owners.size > capacity) owners.delete(owners.keys().next().value as string)
    },
    lookup(responseId) {
      const owner = owners.get(responseId)
      if (owner) {
        owners.delete(responseId)
        owners.set(responseId, owner)
      }
      return owner
    },
    get size() {
      return owners.size
    },
  }
}
