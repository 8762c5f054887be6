/* lists: pointer-chasing with malloc/free. Each round builds a sorted singly linked list by
 * insertion, searches it, reverses it, then builds an unbalanced binary search tree from random keys
 * and walks it recursively (sum, height, in-order check), and frees everything.
 * argv[1] = rounds (default 250). The checksum folds every result in. */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>

#define LIST_NODES 1000
#define LIST_SEARCHES 1000
#define TREE_NODES 8000

struct node { struct node *next; uint32_t key; uint32_t payload; };
struct tree { struct tree *left, *right; uint32_t key; uint32_t count; };

static void *must_alloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "lists: out of memory\n");
        exit(1);
    }
    return p;
}

/* Sorted insertion: walks the list every time (quadratic, branchy, pointer-chasing). */
static struct node *list_insert(struct node *head, uint32_t key, uint32_t payload)
{
    struct node *n = must_alloc(sizeof *n);
    n->key = key;
    n->payload = payload;
    struct node **link = &head;
    while (*link != NULL && (*link)->key < key)
        link = &(*link)->next;
    n->next = *link;
    *link = n;
    return head;
}

__attribute__((noinline)) static const struct node *list_find(const struct node *head, uint32_t key)
{
    for (; head != NULL; head = head->next)
        if (head->key == key)
            return head;
    return NULL;
}

static struct node *list_reverse(struct node *head)
{
    struct node *prev = NULL;
    while (head != NULL) {
        struct node *next = head->next;
        head->next = prev;
        prev = head;
        head = next;
    }
    return prev;
}

static void list_free(struct node *head)
{
    while (head != NULL) {
        struct node *next = head->next;
        free(head);
        head = next;
    }
}

/* Recursive insertion (the recursion is the point: calls and returns, not a loop). */
static struct tree *tree_insert(struct tree *t, uint32_t key)
{
    if (t == NULL) {
        t = must_alloc(sizeof *t);
        t->left = t->right = NULL;
        t->key = key;
        t->count = 1;
    } else if (key < t->key) {
        t->left = tree_insert(t->left, key);
    } else if (key > t->key) {
        t->right = tree_insert(t->right, key);
    } else {
        t->count++;
    }
    return t;
}

static uint64_t tree_sum(const struct tree *t)
{
    return t == NULL ? 0 : (uint64_t)t->key * t->count + tree_sum(t->left) + tree_sum(t->right);
}

static int tree_height(const struct tree *t)
{
    if (t == NULL)
        return 0;
    int l = tree_height(t->left), r = tree_height(t->right);
    return 1 + (l > r ? l : r);
}

/* In-order walk: folds keys into a hash and checks that they come out ascending. */
static void tree_walk(const struct tree *t, uint64_t *hash, uint32_t *last, int *ordered)
{
    if (t == NULL)
        return;
    tree_walk(t->left, hash, last, ordered);
    if (t->key < *last)
        *ordered = 0;
    *last = t->key;
    *hash = (*hash ^ t->key) * 0x100000001b3ULL;
    tree_walk(t->right, hash, last, ordered);
}

static void tree_free(struct tree *t)
{
    if (t == NULL)
        return;
    tree_free(t->left);
    tree_free(t->right);
    free(t);
}

int main(int argc, char **argv)
{
    uint64_t rounds = bench_arg(argc, argv, 250, 100000, "rounds");
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint64_t check = 0xcbf29ce484222325ULL;

    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        struct node *head = NULL;
        for (int i = 0; i < LIST_NODES; i++)
            head = list_insert(head, (uint32_t)(bench_rand(&seed) >> 48), (uint32_t)i);
        uint64_t found = 0;
        for (int i = 0; i < LIST_SEARCHES; i++) {
            const struct node *n = list_find(head, (uint32_t)(bench_rand(&seed) >> 48));
            if (n != NULL)
                found += n->payload + 1;
        }
        head = list_reverse(head);
        uint32_t prev = UINT32_MAX;
        for (const struct node *n = head; n != NULL; n = n->next) {
            if (n->key > prev) {
                printf("BENCH lists FAIL list order\n");
                return 1;
            }
            prev = n->key;
        }
        check = (check ^ found) * 0x100000001b3ULL;
        check = (check ^ head->key) * 0x100000001b3ULL;
        list_free(head);

        struct tree *root = NULL;
        for (int i = 0; i < TREE_NODES; i++)
            root = tree_insert(root, (uint32_t)(bench_rand(&seed) >> 40));
        uint64_t hash = 0;
        uint32_t last = 0;
        int ordered = 1;
        tree_walk(root, &hash, &last, &ordered);
        if (!ordered) {
            printf("BENCH lists FAIL tree order\n");
            return 1;
        }
        check = (check ^ tree_sum(root)) * 0x100000001b3ULL;
        check = (check ^ (uint64_t)tree_height(root)) * 0x100000001b3ULL;
        check = (check ^ hash) * 0x100000001b3ULL;
        tree_free(root);
    }
    double t1 = bench_now();

    char result[40];
    snprintf(result, sizeof result, "check:%016llx", (unsigned long long)check);
    bench_report("lists", t0, t1, result);
    return 0;
}
