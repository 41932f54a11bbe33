/*
 * guest.S — the lab's guest: a 512-byte boot sector, real mode, no OS.
 *
 * Built by mvlab.py with GNU as + ld from binutils:
 *     as --32 -o guest.o guest.S
 *     ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o guest.bin guest.o
 * then padded with zeros to 1 MiB (a whole-MiB disk keeps QEMU and SeaBIOS
 * happy) and attached as a read-only virtio disk.
 *
 * What it does, forever:
 *   - prints "mvguest boot" once, then "mvguest tick N" (N = 1, 2, 3 ...)
 *     to COM1 (0x3f8) once per second of real time (RTC seconds change);
 *     N lives in guest RAM, so after a live migration the destination
 *     prints the source's last N plus one;
 *   - every BIOS timer tick pair (~110 ms) rewrites 256 KiB of RAM
 *     (0x20000-0x5ffff) with a value that changes every pass, so a live
 *     migration always has changing memory to copy. Before each pass it
 *     checks that every page of the region still holds the previous
 *     pass's value and prints "mvguest MISMATCH" when one does not: a
 *     migration that lost a dirty page shows up in the serial log.
 *     Under TCG the guest flushes its (QEMU soft-)TLB with INVLPG over
 *     those pages before each pass, as shared/LAB-NOTES.md advises so that
 *     dirty-page tracking sees every write (see README.md).
 *   - sleeps with HLT between timer interrupts (cheap under TCG).
 *   - handles the timer interrupt (IRQ0, 18.2 Hz as the BIOS programmed
 *     the PIT) itself: it counts in its own variable and acknowledges the
 *     PIC. The BIOS handler ran on SeaBIOS's own stack (segment 0xd980),
 *     a page whose writes TCG's dirty tracking can miss just like the
 *     region's (see above): a migration that stopped the guest inside
 *     that handler once resumed it on a stale stack, and it returned into
 *     garbage (CS:IP f000:0000, caught by the lab's CPU dump). After boot
 *     no BIOS code runs; every write lands on the code page (0x7000,
 *     where TCG always takes the slow, tracked path) or in the region.
 */
	.code16
	.text
	.globl _start
_start:
	cli
	ljmp	$0, $1f			/* normalise CS:IP to 0000:7cxx */
1:	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %ss
	movw	$0x7c00, %sp
	cld
	sti

	movw	$msg_boot, %si
	call	puts

	cli				/* IRQ0 (vector 8) to our own handler */
	movw	$timer_irq, 0x20
	movw	$0, 0x22
	sti

	call	rtc_sec
	movb	%al, last_sec
	movw	timer_ticks, %ax
	movw	%ax, last_tick

main_loop:
	hlt				/* wake on the next interrupt (timer) */

	/* -- dirty memory every 2 timer ticks (~110 ms) -- */
	movw	timer_ticks, %ax
	subw	last_tick, %ax
	cmpw	$2, %ax
	jb	1f
	movw	timer_ticks, %ax
	movw	%ax, last_tick
	call	dirty
1:
	/* -- once a second (RTC seconds changed): print the counter -- */
	call	rtc_sec
	cmpb	last_sec, %al
	je	main_loop
	movb	%al, last_sec
	incl	ticks			/* the counter lives in RAM */
	movw	$msg_tick, %si
	call	puts
	movl	ticks, %eax
	call	putdec
	movw	$msg_crlf, %si
	call	puts
	jmp	main_loop

/* dirty: flush the soft TLB for the region, then rewrite 256 KiB at
 * 0x20000-0x5ffff (4 segments of 64 KiB) with a per-pass value. */
dirty:
	pushw	%es
	/* verify: the first dword of every page still holds the last pass */
	movl	pass, %eax
	testl	%eax, %eax
	jz	13f			/* first pass: nothing written yet */
	movw	$0x2000, %dx
10:	movw	%dx, %es
	xorw	%di, %di
11:	cmpl	%es:(%di), %eax
	jne	12f
	addw	$0x1000, %di		/* next 4 KiB page; wraps to 0 after 16 */
	jnz	11b
	addw	$0x1000, %dx
	cmpw	$0x6000, %dx
	jb	10b
	jmp	13f
12:	movw	$msg_bad, %si
	call	puts
13:	incl	pass
	/* INVLPG every 4 KiB page of the region (linear = physical here) */
	movl	$0x20000, %ebx
2:	invlpg	(%ebx)
	addl	$0x1000, %ebx
	cmpl	$0x60000, %ebx
	jb	2b
	movw	$0x2000, %dx		/* first segment */
3:	movw	%dx, %es
	xorw	%di, %di
	movl	pass, %eax
	movw	$0x4000, %cx		/* 16384 dwords = 64 KiB */
	rep stosl
	addw	$0x1000, %dx
	cmpw	$0x6000, %dx
	jb	3b
	popw	%es
	ret

/* rtc_sec: AL = RTC seconds register (BCD or binary, only compared).
 * Reads until two reads agree, so an update in progress is never seen. */
rtc_sec:
	pushw	%bx
4:	movb	$0x00, %al
	outb	%al, $0x70
	inb	$0x71, %al
	movb	%al, %bl
	movb	$0x00, %al
	outb	%al, $0x70
	inb	$0x71, %al
	cmpb	%al, %bl
	jne	4b
	popw	%bx
	ret

/* putc: AL to COM1, waiting for the transmit holding register */
putc:
	pushw	%dx
	pushw	%ax
	movw	$0x3fd, %dx
5:	inb	%dx, %al
	testb	$0x20, %al
	jz	5b
	popw	%ax
	movw	$0x3f8, %dx
	outb	%al, %dx
	popw	%dx
	ret

/* timer_irq: IRQ0. Counts and acknowledges (non-specific EOI), on the
 * interrupted stack, which is ours (page 0x7000). */
timer_irq:
	pushw	%ax
	incw	%cs:timer_ticks
	movb	$0x20, %al
	outb	%al, $0x20
	popw	%ax
	iret

/* puts: NUL-terminated string at DS:SI */
puts:
	lodsb
	testb	%al, %al
	jz	6f
	call	putc
	jmp	puts
6:	ret

/* putdec: EAX as unsigned decimal */
putdec:
	pushl	%ebx
	pushl	%edx
	xorw	%cx, %cx
	movl	$10, %ebx
7:	xorl	%edx, %edx
	divl	%ebx
	pushw	%dx
	incw	%cx
	testl	%eax, %eax
	jnz	7b
8:	popw	%ax
	addb	$'0', %al
	call	putc
	loop	8b
	popl	%edx
	popl	%ebx
	ret

msg_boot:	.asciz	"\r\nmvguest boot\r\n"
msg_tick:	.asciz	"mvguest tick "
msg_crlf:	.asciz	"\r\n"
msg_bad:	.asciz	"mvguest MISMATCH\r\n"

	.balign	4
pass:		.long	0
ticks:		.long	0
last_tick:	.word	0
timer_ticks:	.word	0
last_sec:	.byte	0

	.org	510
	.byte	0x55, 0xaa
